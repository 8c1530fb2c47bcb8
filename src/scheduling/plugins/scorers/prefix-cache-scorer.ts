// Estimated prefix-cache scorer (GIE's default `prefix-cache-scorer`, ACK's `prefixCache.mode: estimated`):
// matched / total approximate key blocks of the prompt text against a per-endpoint LRU of what kvpick routed
// there (scheduling/estimated/). Needs no KV events; its guesses go stale when pods evict. Learns in
// preRequest, i.e. only from the requests this kvpick routed.
import { definePlugin } from "../../registry.js";
import type { Scorer } from "../../types.js";
import { EstimatedPrefixIndex, estimatedPrefixParams } from "../../estimated/estimated-prefix-index.js";

export const prefixCacheScorer = definePlugin({
  type: "prefix-cache-scorer",
  role: "scorer",
  params: estimatedPrefixParams,
  create: (name, params, context): Scorer => {
    const index = new EstimatedPrefixIndex(params, context.now);
    return {
      type: "prefix-cache-scorer",
      name,
      role: "scorer",
      score(cycle, candidates) {
        const out = new Float64Array(candidates.length);
        const { total, matched } = index.match(cycle, candidates);
        if (total > 0) for (let i = 0; i < out.length; i++) out[i] = matched[i]! / total;
        return out;
      },
      preRequest(cycle, picked) {
        index.record(cycle, picked.candidates, picked.endpoint);
      },
    };
  },
});
