// Running-requests scorer (GIE `running-requests-size-scorer`): min-max over candidates of vLLM's running
// batch, fewest running → 1, most → 0, all equal → 1. Like queue-scorer, a pod without fresh metrics scores 0:
// its batch may have grown since it last answered.
import { z } from "zod";
import { definePlugin } from "../../registry.js";
import type { Scorer } from "../../types.js";

export const runningRequestsSizeScorer = definePlugin({
  type: "running-requests-size-scorer",
  role: "scorer",
  params: z.strictObject({}),
  create: (name): Scorer => ({
    type: "running-requests-size-scorer",
    name,
    role: "scorer",
    score(_cycle, candidates) {
      const out = new Float64Array(candidates.length);
      let min = Number.POSITIVE_INFINITY;
      let max = Number.NEGATIVE_INFINITY;
      for (const e of candidates) {
        if (e.metricsState !== "fresh" || e.metrics === null) continue;
        min = Math.min(min, e.metrics.running);
        max = Math.max(max, e.metrics.running);
      }
      candidates.forEach((e, i) => {
        if (e.metricsState !== "fresh" || e.metrics === null) return;
        out[i] = max === min ? 1 : (max - e.metrics.running) / (max - min);
      });
      return out;
    },
  }),
});
