// KV-cache utilisation scorer (GIE `kv-cache-utilization-scorer`): 1 − usage, so the pod with the most free
// KV cache scores highest. A pod without fresh metrics scores 0 (treated as saturated, as GIE does). Prompt
// tokens kvpick routed there since the scrape (dispatch credit, when on) count as used: they will be.
import { z } from "zod";
import { definePlugin } from "../../registry.js";
import type { Endpoint, LoadMetrics } from "../../../endpoints/endpoint.js";
import type { Scorer } from "../../types.js";

/**
 * The pod's KV-cache usage as it will be once the prompt tokens kvpick routed there since the scrape are
 * cached (dispatch credit; the reading cannot show them yet), uncapped.
 */
export function projectedKvUsage(e: Endpoint, m: LoadMetrics): number {
  const pending = e.dispatched?.prefillTokens ?? 0;
  const capacity = (m.numGpuBlocks ?? 0) * (m.blockSize ?? 0);
  return m.kvCacheUsage + (pending > 0 && capacity > 0 ? pending / capacity : 0);
}

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
        if (e.metricsState !== "fresh" || e.metrics === null) return;
        out[i] = 1 - Math.min(1, projectedKvUsage(e, e.metrics));
      });
      return out;
    },
  }),
});
