// The precise scorers' per-pod fallback: an endpoint the KV index has never heard of (vLLM publishes no
// events, or none arrived yet) is matched by the estimated prefix index instead of scoring no cache at all,
// and what kvpick routes to it is recorded there. Once its events arrive, the exact index takes over and
// the estimate is dropped.
import type { CycleState, Endpoint, PickedEndpoint, PluginContext, PrefixLookup } from "../types.js";

/** Whether the index holds blocks of this endpoint, under its "ip:port" or its bare-IP topic id. */
export function knownToIndex(lookup: PrefixLookup, e: Endpoint): boolean {
  return lookup.hasPod(e.address) || lookup.hasPod(e.ip);
}

/**
 * For each candidate unknown to the index: the estimated fraction of the prompt cached there (matched / total
 * key blocks); NaN for candidates the index knows. Null when no candidate needs the fallback.
 */
export function fallbackFractions(
  context: PluginContext,
  cycle: CycleState,
  candidates: readonly Endpoint[],
): Float64Array | null {
  const { prefixLookup: lookup, estimatedFallback: fallback } = context;
  if (lookup == null || fallback == null) return null;
  return cycle.memo("estimated-fallback-fractions", () => {
    let out: Float64Array | null = null;
    let est: { total: number; matched: Uint32Array } | null = null;
    for (let i = 0; i < candidates.length; i++) {
      if (knownToIndex(lookup, candidates[i]!)) continue;
      if (out === null) out = new Float64Array(candidates.length).fill(Number.NaN);
      est ??= fallback.match(cycle, candidates);
      out[i] = est.total === 0 ? 0 : est.matched[i]! / est.total;
    }
    return out;
  });
}

/** PreRequest of the precise scorers: learn what goes to event-less endpoints, once per cycle. */
export function recordFallback(context: PluginContext, cycle: CycleState, picked: PickedEndpoint): void {
  const { prefixLookup: lookup, estimatedFallback: fallback } = context;
  if (lookup == null || fallback == null) return;
  cycle.memo("estimated-fallback-recorded", () => {
    if (knownToIndex(lookup, picked.endpoint)) fallback.forget(picked.endpoint.address);
    else fallback.record(cycle, picked.candidates, picked.endpoint);
    return true;
  });
}
