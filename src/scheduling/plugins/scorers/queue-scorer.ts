// Queue scorer (GIE `queue-scorer`): min-max over candidates of vLLM's waiting queue, fewest waiting → 1,
// most → 0, all equal → 1. A pod without fresh metrics scores 0, as GIE treats stale metrics as saturated:
// its queue may have grown since it last answered.
import { z } from "zod";
import { definePlugin } from "../../registry.js";
import type { Scorer } from "../../types.js";

export const queueScorer = definePlugin({
  type: "queue-scorer",
  role: "scorer",
  params: z.strictObject({}),
  create: (name): Scorer => ({
    type: "queue-scorer",
    name,
    role: "scorer",
    score(_cycle, candidates) {
      const out = new Float64Array(candidates.length);
      let min = Number.POSITIVE_INFINITY;
      let max = Number.NEGATIVE_INFINITY;
      for (const e of candidates) {
        if (e.metricsState !== "fresh" || e.metrics === null) continue;
        min = Math.min(min, e.metrics.waiting);
        max = Math.max(max, e.metrics.waiting);
      }
      candidates.forEach((e, i) => {
        if (e.metricsState !== "fresh" || e.metrics === null) return;
        out[i] = max === min ? 1 : (max - e.metrics.waiting) / (max - min);
      });
      return out;
    },
  }),
});
