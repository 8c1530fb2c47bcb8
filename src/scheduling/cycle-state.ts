// The per-request state of one scheduling cycle. Its main job: look the request's block chain up in the KV
// index once, however many plugins (and the scheduler's own report) ask for the prefix match.
import {
  type CycleState,
  type Endpoint,
  isEventDriven,
  type PrefixLookup,
  type PrefixMatch,
  type SchedulingRequest,
} from "./types.js";

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
      // The index keys a pod by its event topic id: "ip:port" (connect mode, DP ranks distinct) or just "ip"
      // (bind mode, reference topic `kv@<pod-ip>@<model>`). Pods the index has never heard of match nothing.
      const podIds = candidates.map((e) =>
        lookup.hasPod(e.address) || isEventDriven(lookup, e.address) ? e.address : e.ip,
      );
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
