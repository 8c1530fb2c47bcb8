// Drops candidates whose load metrics are not fresh (scrape failed, stale or never done) — but only when at
// least one candidate is fresh. A pod that stops answering /metrics is often down or wedged, so routing to it
// risks an error; but when no pod answers (metrics outage, startup) routing must go on: fail open.
import { z } from "zod";
import { definePlugin } from "../../registry.js";
import type { Filter } from "../../types.js";

export const freshMetricsFilter = definePlugin({
  type: "fresh-metrics-filter",
  role: "filter",
  params: z.strictObject({}),
  create: (name): Filter => ({
    type: "fresh-metrics-filter",
    name,
    role: "filter",
    filter(_cycle, candidates) {
      const fresh = candidates.filter((e) => e.metricsState === "fresh");
      return fresh.length === 0 || fresh.length === candidates.length ? candidates : fresh;
    },
  }),
});
