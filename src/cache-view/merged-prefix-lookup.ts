// One request's view of the KV-block index: the local index merged with what the shared index (Redis)
// answered for this request's chain. Per pod the better of the two wins (more medium-weighted credit, then
// more blocks): Redis holds the union of every replica's pods, the local index may be a tick fresher
// (Redis writes trail by one flush), so neither alone is always right and the maximum is never worse.
import { isEventDriven, type PrefixLookup } from "./prefix-lookup.js";

/** A pod's longest cached prefix of one chain, as the shared index reported it. */
export interface SharedMatch {
  readonly blocks: number;
  readonly weighted: number;
}

export class MergedPrefixLookup implements PrefixLookup {
  readonly #local: PrefixLookup;
  readonly #chain: BigUint64Array;
  readonly #shared: ReadonlyMap<string, SharedMatch>;

  /** `shared` answers for `chain` only; other chains are looked up locally. */
  constructor(local: PrefixLookup, chain: BigUint64Array, shared: ReadonlyMap<string, SharedMatch>) {
    this.#local = local;
    this.#chain = chain;
    this.#shared = shared;
  }

  hasPod(podId: string): boolean {
    return this.#local.hasPod(podId) || this.#shared.has(podId);
  }

  /**
   * Published here, or holds blocks another replica heard of (which it can only have learnt from events).
   * A pod that published only to another replica and holds nothing of this chain is not seen as
   * event-driven here (Redis keeps blocks, not publishers; README "High availability").
   */
  eventDriven(podId: string): boolean {
    return isEventDriven(this.#local, podId) || this.#shared.has(podId);
  }

  /** This replica's view of the pod's event stream (a degraded pod's credit counts less) applies to both. */
  creditFactor(podId: string): number {
    return this.#local.creditFactor?.(podId) ?? 1;
  }

  matchPrefix(
    chain: BigUint64Array,
    podIds: readonly string[],
  ): { blocks: Uint32Array; weighted: Float64Array } {
    const r = this.#local.matchPrefix(chain, podIds);
    if (this.#shared.size === 0 || !sameChain(chain, this.#chain)) return r;
    for (let i = 0; i < podIds.length; i++) {
      const s = this.#shared.get(podIds[i]!);
      if (s === undefined) continue;
      const w = r.weighted[i]!;
      if (s.weighted > w || (s.weighted === w && s.blocks > r.blocks[i]!)) {
        r.blocks[i] = s.blocks;
        r.weighted[i] = s.weighted;
      }
    }
    return r;
  }
}

function sameChain(a: BigUint64Array, b: BigUint64Array): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
