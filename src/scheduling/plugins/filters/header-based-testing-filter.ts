// Conformance helper (GIE `header-based-testing-filter`): keeps only the endpoints named by the request header
// `test-epp-endpoint-selection: ip[,ip…]` (an IP, or "ip:port" for one rank), in header order. As in GIE, a
// missing or empty header keeps nothing: the conformance suite uses it to force a choice, never in production.
import { z } from "zod";
import { definePlugin } from "../../registry.js";
import type { Endpoint, Filter } from "../../types.js";

export const TEST_ENDPOINT_SELECTION_HEADER = "test-epp-endpoint-selection";

export const headerBasedTestingFilter = definePlugin({
  type: "header-based-testing-filter",
  role: "filter",
  params: z.strictObject({}),
  create: (name): Filter => ({
    type: "header-based-testing-filter",
    name,
    role: "filter",
    filter(cycle, candidates) {
      const value = cycle.request.headers.get(TEST_ENDPOINT_SELECTION_HEADER) ?? "";
      const kept: Endpoint[] = [];
      for (const raw of value.split(",")) {
        const wanted = raw.trim();
        if (wanted === "") continue;
        for (const e of candidates) {
          if ((e.ip === wanted || e.address === wanted) && !kept.includes(e)) kept.push(e);
        }
      }
      return kept;
    },
  }),
});
