// KV-cache utilisation scorer (GIE `kv-cache-utilization-scorer`): 1 − usage, so the pod with the most free
// KV cache scores highest. A pod without fresh metrics scores 0 (treated as saturated, as GIE does).
import { z } from "zod";
import { definePlugin } from "../../registry.js";
import type { Scorer } from "../../types.js";

export const kvCacheUtilizationScorer = definePlugin({
  type: "kv-cache-utilization-scorer",
  role: "scorer",
  params: z.strictObject({}),
  create: (name): Scorer => ({
    type: "kv-cache-utilization-scorer",
    name,
    role: "scorer",
    score(_cycle, candidates) {
      const out = new Float64Array(candidates.length);
      candidates.forEach((e, i) => {
        if (e.metricsState === "fresh" && e.metrics !== null) out[i] = 1 - e.metrics.kvCacheUsage;
      });
      return out;
    },
  }),
});
