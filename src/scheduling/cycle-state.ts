// The per-request state of one scheduling cycle. Its main job: look the request's block chain up in the KV
// index once, however many plugins (and the scheduler's own report) ask for the prefix match.
import { podKeyOf } from "../cache-view/pod-key.js";
import { isEventDriven, type PrefixLookup } from "../cache-view/prefix-lookup.js";
import type { CycleState, Endpoint, PrefixMatch, SchedulingRequest } from "./types.js";

export class SchedulingCycle implements CycleState {
  readonly request: SchedulingRequest;
  readonly #lookup: PrefixLookup | null;
  #prefixFor: readonly Endpoint[] | null = null;
  #prefix: PrefixMatch | null = null;
  #memo: Map<string, unknown> | null = null;

  constructor(request: SchedulingRequest, lookup: PrefixLookup | null) {
    this.request = request;
    this.#lookup = lookup;
  }

  get prefixLookup(): PrefixLookup | null {
    return this.#lookup;
  }

  prefixMatch(candidates: readonly Endpoint[]): PrefixMatch {
    if (this.#prefix !== null && this.#prefixFor === candidates) return this.#prefix;
    const chain = this.request.blockHashes;
    const n = candidates.length;
    let match: PrefixMatch;
    if (this.#lookup === null || chain.length === 0 || n === 0) {
      match = { totalBlocks: chain.length, blocks: new Uint32Array(n), weighted: new Float64Array(n) };
    } else {
      const lookup = this.#lookup;
      // The pod-key rule (cache-view/pod-key.ts); pods the index has never heard of match nothing.
      const known = (id: string) => lookup.hasPod(id) || isEventDriven(lookup, id);
      const podIds = candidates.map((e) => podKeyOf(known, e) ?? e.ip);
      const { blocks, weighted } = lookup.matchPrefix(chain, podIds);
      // A degraded pod (events lost) may hold fewer of these blocks than the index says: count them less.
      if (lookup.creditFactor !== undefined)
        for (let i = 0; i < n; i++) if (blocks[i]! > 0) weighted[i]! *= lookup.creditFactor(podIds[i]!);
      match = { totalBlocks: chain.length, blocks, weighted };
    }
    this.#prefixFor = candidates;
    this.#prefix = match;
    return match;
  }

  memo<T>(key: string, compute: () => T): T {
    this.#memo ??= new Map();
    if (this.#memo.has(key)) return this.#memo.get(key) as T;
    const value = compute();
    this.#memo.set(key, value);
    return value;
  }
}

/**
 * The memo slot where a scorer that estimated a candidate's cached prefix from prompt text (the estimated
 * fallback) leaves `{ tokens }`, one per candidate (NaN = not estimated). The scheduler reports the winner's
 * estimate as its cached tokens; declared here so the core never imports a plugin helper.
 */
export const ESTIMATED_MEMO_KEY = "estimated-fallback";

/** The estimated cached tokens of candidates[index] if a scorer estimated it this cycle, else null. */
export function estimatedCachedTokens(cycle: CycleState, index: number): number | null {
  const est = cycle.memo<{ readonly tokens: Float64Array } | null>(ESTIMATED_MEMO_KEY, () => null);
  const t = est?.tokens[index];
  return t === undefined || Number.isNaN(t) ? null : t;
}
