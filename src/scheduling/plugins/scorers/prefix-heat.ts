// How often kvpick routed requests sharing a given prefix lately: an exponentially decayed count keyed by the
// prefix's last block hash (its lo/hi words, never a JS number of 64 bits). The TTFT cost scorer relaxes its
// recompute charge for hot prefixes, so a prefix many requests are queueing for is replicated to a second pod
// early, while a rarely used one stays where it is cached.

interface Heat {
  hi: number;
  count: number;
  at: number;
}

export class PrefixHeat {
  readonly #tauMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;
  readonly #heat = new Map<number, Heat>();

  /** `tauMs`: the decay time constant (a count ≈ requests in the last tauMs); `maxKeys` bounds memory. */
  constructor(tauMs: number, maxKeys: number, now: () => number = () => performance.now()) {
    this.#tauMs = tauMs;
    this.#maxKeys = maxKeys;
    this.#now = now;
  }

  /** Decayed count of requests routed with the prefix ending at this block. */
  heat(words: Uint32Array, block: number): number {
    const h = this.#heat.get(words[2 * block]!);
    if (h === undefined || h.hi !== words[2 * block + 1]) return 0;
    return h.count * Math.exp(-(this.#now() - h.at) / this.#tauMs);
  }

  /** One more request routed with the prefix ending at this block. */
  bump(words: Uint32Array, block: number): void {
    const lo = words[2 * block]!;
    const hi = words[2 * block + 1]!;
    const now = this.#now();
    const h = this.#heat.get(lo);
    if (h !== undefined && h.hi === hi) {
      h.count = h.count * Math.exp(-(now - h.at) / this.#tauMs) + 1;
      h.at = now;
      // Most recently bumped last: Map order is the eviction order.
      this.#heat.delete(lo);
      this.#heat.set(lo, h);
      return;
    }
    this.#heat.delete(lo);
    this.#heat.set(lo, { hi, count: 1, at: now });
    if (this.#heat.size > this.#maxKeys) this.#heat.delete(this.#heat.keys().next().value!);
  }
}
