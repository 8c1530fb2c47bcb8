// Precise prefix-cache scorer: the fraction of the request's blocks cached on a pod as the longest run
// from block 0, each block credited by its best medium (GPU 1.0, CPU 0.8), from vLLM's own KV events.
// A request shorter than one block, or a pod that never sent events, scores 0 (load scorers decide).
import { z } from "zod";
import { definePlugin } from "../../registry.js";
import type { Scorer } from "../../types.js";

export const precisePrefixCacheScorer = definePlugin({
  type: "precise-prefix-cache-scorer",
  role: "scorer",
  params: z.strictObject({}),
  create: (name): Scorer => ({
    type: "precise-prefix-cache-scorer",
    name,
    role: "scorer",
    score(cycle, candidates) {
      const match = cycle.prefixMatch(candidates);
      const out = new Float64Array(candidates.length);
      if (match.totalBlocks === 0) return out;
      for (let i = 0; i < out.length; i++) out[i] = (match.weighted[i] ?? 0) / match.totalBlocks;
      return out;
    },
  }),
});
