// The precise scorers' per-pod fallback: an endpoint that never published a KV event (vLLM publishes no
// events, or none arrived yet) is matched by the estimated prefix index instead of scoring no cache at all,
// and what kvpick routes to it is recorded there. Once its events arrive, the exact index takes over and
// the estimate is dropped — for good: a pod that published and now holds nothing (AllBlocksCleared, or only
// other prefixes) really has nothing cached, and estimating it would pull traffic from the pod that has.
import { podKeyOf } from "../../cache-view/pod-key.js";
import { isEventDriven, type PrefixLookup } from "../../cache-view/prefix-lookup.js";
import { ESTIMATED_MEMO_KEY as MEMO_KEY } from "../cycle-state.js";
import type { CycleState, Endpoint, PickedEndpoint, PluginContext } from "../types.js";

/** Whether this endpoint publishes KV events, under its "ip:port" or its bare-IP topic id. */
export function knownToIndex(lookup: PrefixLookup, e: Endpoint): boolean {
  return podKeyOf((id) => isEventDriven(lookup, id), e) !== null;
}

/** Estimates for the candidates unknown to the index (NaN for those the index knows). */
export interface FallbackEstimates {
  /** Matched / total key blocks (the GIE score). */
  readonly fraction: Float64Array;
  /** Matched key blocks × the tokens a key block stands for. */
  readonly tokens: Float64Array;
}

/**
 * The estimated prefix of every candidate the index has never heard of, computed once per cycle; null when the
 * index knows every candidate (or there is no fallback).
 */
export function fallbackEstimates(
  context: PluginContext,
  cycle: CycleState,
  candidates: readonly Endpoint[],
): FallbackEstimates | null {
  const lookup = cycle.prefixLookup;
  const fallback = context.estimatedFallback;
  if (lookup == null || fallback == null) return null;
  return cycle.memo(MEMO_KEY, () => {
    let out: FallbackEstimates | null = null;
    let est: ReturnType<typeof fallback.match> | null = null;
    for (let i = 0; i < candidates.length; i++) {
      if (knownToIndex(lookup, candidates[i]!)) continue;
      if (out === null) {
        const nan = () => new Float64Array(candidates.length).fill(Number.NaN);
        out = { fraction: nan(), tokens: nan() };
      }
      est ??= fallback.match(cycle, candidates);
      out.fraction[i] = est.total === 0 ? 0 : est.matched[i]! / est.total;
      out.tokens[i] = est.matched[i]! * est.blockTokens;
    }
    return out;
  });
}

/** PreRequest of the precise scorers: learn what goes to event-less endpoints, once per cycle. */
export function recordFallback(context: PluginContext, cycle: CycleState, picked: PickedEndpoint): void {
  const lookup = cycle.prefixLookup;
  const fallback = context.estimatedFallback;
  if (lookup == null || fallback == null) return;
  cycle.memo("estimated-fallback-recorded", () => {
    if (knownToIndex(lookup, picked.endpoint)) fallback.forget(picked.endpoint.address);
    else fallback.record(cycle, picked.candidates, picked.endpoint);
    return true;
  });
}
