// Precise prefix-cache scorer: the fraction of the request's blocks cached on a pod as the longest run
// from block 0, each block credited by its best medium (GPU 1.0, CPU 0.8), from vLLM's own KV events (and
// kvpick's speculative entries for blocks just routed there, when enabled). A request shorter than one block
// scores 0 (load scorers decide). A pod the index has never heard of is scored by estimated prefix matching
// instead (`estimatedFallback`, default on), so pods without KV events still get prefix affinity.
import { z } from "zod";
import { fallbackEstimates, recordFallback } from "../../estimated/estimated-fallback.js";
import { definePlugin } from "../../registry.js";
import type { Scorer } from "../../types.js";

export const precisePrefixCacheScorer = definePlugin({
  type: "precise-prefix-cache-scorer",
  role: "scorer",
  params: z.strictObject({
    /** Score endpoints without KV events by estimated (prompt-text) prefix matching instead of 0. */
    estimatedFallback: z.boolean().default(true),
  }),
  create: (name, params, context): Scorer => ({
    type: "precise-prefix-cache-scorer",
    name,
    role: "scorer",
    score(cycle, candidates) {
      const match = cycle.prefixMatch(candidates);
      const out = new Float64Array(candidates.length);
      if (match.totalBlocks > 0)
        for (let i = 0; i < out.length; i++) out[i] = (match.weighted[i] ?? 0) / match.totalBlocks;
      const est = params.estimatedFallback ? fallbackEstimates(context, cycle, candidates) : null;
      if (est !== null)
        for (let i = 0; i < out.length; i++) if (!Number.isNaN(est.fraction[i]!)) out[i] = est.fraction[i]!;
      return out;
    },
    ...(params.estimatedFallback
      ? { preRequest: (cycle, picked) => recordFallback(context, cycle, picked) }
      : {}),
  }),
});
