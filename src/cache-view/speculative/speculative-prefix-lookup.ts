// The KV index as scheduling sees it when speculative entries are on: a pod's cached prefix is the longer
// of what vLLM confirmed (the BlockIndex) and what kvpick routed there within the TTL (SpeculativeIndex).
// Speculative blocks are credited as GPU-resident: vLLM is computing them right now.
import { isEventDriven, type PrefixLookup } from "../prefix-lookup.js";
import { SpeculativeIndex, type SpeculativeIndexStats } from "./speculative-index.js";

export interface SpeculativePrefixStats extends SpeculativeIndexStats {
  /** Lookups in which a speculative entry lengthened some candidate's cached prefix. */
  readonly hits: number;
}

/** Blocks one loop turn adds. A block costs ~1.5 µs (a bucket lookup and insert, a FIFO push): the
 * 21,000-block chain of a 100,000-message request (1.4 M tokens) held the loop 33 ms in one add. */
export const RECORD_SLICE = 2048;

export class SpeculativePrefixLookup implements PrefixLookup {
  readonly #inner: PrefixLookup;
  readonly #spec: SpeculativeIndex;
  readonly #one = new BigUint64Array(1);
  #hits = 0;

  constructor(inner: PrefixLookup, options: { ttlMs: number; maxEntries: number; now?: () => number }) {
    this.#inner = inner;
    const words = new Uint32Array(this.#one.buffer);
    this.#spec = new SpeculativeIndex({
      ...options,
      // A block is confirmed when the engine-fed index holds it for that pod (a one-block "chain" lookup).
      isConfirmed: (podId, lo, hi) => {
        words[0] = lo;
        words[1] = hi;
        return (inner.matchPrefix(this.#one, [podId]).blocks[0] ?? 0) > 0;
      },
    });
  }

  matchPrefix(
    chain: BigUint64Array,
    podIds: readonly string[],
  ): { blocks: Uint32Array; weighted: Float64Array } {
    const confirmed = this.#inner.matchPrefix(chain, podIds);
    if (this.#spec.size === 0) return confirmed;
    const spec = this.#spec.match(chain, podIds, confirmed.blocks);
    const { blocks, weighted } = confirmed;
    let extended = false;
    for (let i = 0; i < spec.length; i++) {
      const extra = spec[i]! - blocks[i]!;
      if (extra <= 0) continue;
      blocks[i] = spec[i]!;
      weighted[i] = weighted[i]! + extra;
      extended = true;
    }
    if (extended) this.#hits++;
    return confirmed;
  }

  hasPod(podId: string): boolean {
    return this.#inner.hasPod(podId);
  }

  eventDriven(podId: string): boolean {
    return isEventDriven(this.#inner, podId);
  }

  /** The engine-fed index's trust in the pod (a degraded pod counts less) applies to its speculation too. */
  creditFactor(podId: string): number {
    return this.#inner.creditFactor?.(podId) ?? 1;
  }

  /**
   * The request with this chain was routed to the pod the index knows as `podId`: the blocks beyond what the
   * index already confirms become speculative entries (those already there are refreshed).
   */
  record(podId: string, chain: BigUint64Array): void {
    if (chain.length === 0) return;
    const held = this.#inner.matchPrefix(chain, [podId]).blocks[0] ?? 0;
    if (chain.length - held <= RECORD_SLICE) {
      this.#spec.add(podId, chain, held);
      return;
    }
    // A huge prompt: its first blocks now (a prefix is what the next request can match), the rest in later
    // loop turns, in order, so the loop never holds more than one slice. Our own copy: the caller's array
    // may be a view that is reused once this request is answered.
    const own = chain.slice();
    let at = held + RECORD_SLICE;
    this.#spec.add(podId, own.subarray(0, at), held);
    const step = () => {
      const end = Math.min(own.length, at + RECORD_SLICE);
      this.#spec.add(podId, own.subarray(0, end), at);
      at = end;
      if (at < own.length) setImmediate(step);
    };
    setImmediate(step);
  }

  /** The pod's cache was emptied (the index cleared it): what was routed there before stops counting. */
  podCleared(podId: string): void {
    this.#spec.clearPod(podId);
  }

  stats(): SpeculativePrefixStats {
    this.#spec.sweep();
    return { ...this.#spec.stats(), hits: this.#hits };
  }
}
