// Speculative prefix entries (llm-d's speculative indexing, Dynamo's predict-on-route side index): when a
// request is routed to a pod, its blocks count as cached there for a short TTL, because vLLM's BlockStored
// events arrive only after the pod has scheduled the request (plus the event delay). A burst of requests
// sharing a new prefix then lands together instead of scattering. Kept apart from the engine-fed BlockIndex:
// vLLM's events stay the only writer of that one, so a wrong guess can never outlive its TTL.
//
// Layout: entries in typed arrays (block hash as lo/hi uint32 words, never a JS number; pod; expiry;
// bucket chain; the pod's clear epoch when last routed), a Map from the lo word to the first entry of its
// bucket, and a FIFO of (entry, push time) that drives expiry. Re-routing the same block to the same pod
// refreshes its entry instead of adding one.
//
// A pod whose cache is emptied (AllBlocksCleared, a publisher restart, the pod left the pool) loses its
// entries at once: `clearPod` bumps the pod's epoch, and entries routed under an older epoch no longer match.
// They stay until their TTL like any other (O(1) per clear instead of a walk over every bucket).

export interface SpeculativeIndexOptions {
  /** How long a routed block counts as cached without confirmation. */
  ttlMs: number;
  /** Bound on live entries; past it the oldest are dropped early (counted as evicted). */
  maxEntries: number;
  /** Monotonic clock in ms. */
  now?: () => number;
  /** At expiry: did the engine-fed index get the block meanwhile? (counts confirmations vs expiries) */
  isConfirmed?: (podId: string, lo: number, hi: number) => boolean;
}

export interface SpeculativeIndexStats {
  /** Live (pod, block) entries. */
  readonly entries: number;
  /** Entries created (refreshes not counted). */
  readonly added: number;
  /** Entries that expired after vLLM had reported the block (the guess was right). */
  readonly confirmed: number;
  /** Entries that expired without vLLM reporting the block. */
  readonly expired: number;
  /** Entries dropped before their TTL because of `maxEntries`. */
  readonly evicted: number;
}

const NONE = -1;
/** Entry index and generation are packed into one FIFO number: index < 2^26, generation mod 2^26. */
const GEN_MOD = 2 ** 26;

export class SpeculativeIndex {
  readonly ttlMs: number;
  readonly maxEntries: number;
  readonly #now: () => number;
  readonly #isConfirmed: SpeculativeIndexOptions["isConfirmed"];
  // Entries.
  #lo = new Uint32Array(0);
  #hi = new Uint32Array(0);
  #pod = new Int32Array(0);
  #exp = new Float64Array(0);
  #next = new Int32Array(0);
  #gen = new Uint32Array(0);
  /** The pod's clear epoch when the entry was last routed (stale once the pod is cleared again). */
  #epoch = new Uint32Array(0);
  #used = 0;
  #free = NONE;
  #live = 0;
  readonly #buckets = new Map<number, number>();
  // FIFO of [entry|generation, push time].
  #fifoItem: number[] = [];
  #fifoAt: number[] = [];
  #fifoHead = 0;
  // Pods: id ↔ small number, entry count per pod (a pod with no entries gives its number back).
  readonly #podIdx = new Map<string, number>();
  readonly #podName: string[] = [];
  readonly #podLive: number[] = [];
  readonly #podFree: number[] = [];
  /** Clears per pod number since it was assigned (entries of older epochs no longer match). */
  readonly #podEpoch: number[] = [];
  // match() scratch: blocks matched so far per pod number, −1 = not asked about.
  #at = new Int32Array(0);
  #added = 0;
  #confirmed = 0;
  #expired = 0;
  #evicted = 0;

  constructor(options: SpeculativeIndexOptions) {
    if (!(options.ttlMs > 0)) throw new RangeError(`ttlMs must be > 0, got ${options.ttlMs}`);
    if (!Number.isInteger(options.maxEntries) || options.maxEntries < 1 || options.maxEntries >= GEN_MOD)
      throw new RangeError(`maxEntries must be an integer in 1..2^26, got ${options.maxEntries}`);
    this.ttlMs = options.ttlMs;
    this.maxEntries = options.maxEntries;
    this.#now = options.now ?? (() => performance.now());
    this.#isConfirmed = options.isConfirmed;
  }

  get size(): number {
    return this.#live;
  }

  /** Blocks chain[from..] now count as cached on `podId` for the TTL (refreshing entries already there). */
  add(podId: string, chain: BigUint64Array, from = 0): void {
    if (from >= chain.length) return;
    const now = this.#now();
    this.sweep(now);
    const words = new Uint32Array(chain.buffer, chain.byteOffset, chain.length * 2);
    const p = this.#podNumber(podId);
    const exp = now + this.ttlMs;
    for (let i = Math.max(0, from); i < chain.length; i++) {
      const lo = words[2 * i]!;
      const hi = words[2 * i + 1]!;
      let s = this.#find(lo, hi, p);
      if (s === NONE) {
        if (this.#live >= this.maxEntries) this.#evictOldest();
        s = this.#alloc();
        this.#lo[s] = lo;
        this.#hi[s] = hi;
        this.#pod[s] = p;
        this.#next[s] = this.#buckets.get(lo) ?? NONE;
        this.#buckets.set(lo, s);
        this.#live++;
        this.#podLive[p]!++;
        this.#added++;
      }
      this.#exp[s] = exp;
      this.#epoch[s] = this.#podEpoch[p]!;
      this.#fifoItem.push(s * GEN_MOD + this.#gen[s]!);
      this.#fifoAt.push(now);
    }
  }

  /**
   * For each podIds[i]: how many consecutive blocks of `chain`, from block 0, the pod holds when its first
   * `start[i]` blocks are known to be there (vLLM confirmed them) and the rest must be speculative entries
   * (unexpired). Without `start`, speculative entries alone from block 0. Pods never routed to get start[i].
   */
  match(chain: BigUint64Array, podIds: readonly string[], start?: Uint32Array): Uint32Array {
    const n = podIds.length;
    const out = new Uint32Array(n);
    if (start !== undefined) out.set(start.subarray(0, n));
    if (this.#live === 0 || chain.length === 0 || n === 0) return out;
    const now = this.#now();
    if (this.#at.length < this.#podName.length) this.#at = new Int32Array(this.#podName.length).fill(NONE);
    // at[p] = blocks the pod holds so far; the walk at block i advances the pods standing at i.
    const at = this.#at;
    let from = chain.length;
    let frontier = 0;
    for (let l = 0; l < n; l++) {
      const p = this.#podIdx.get(podIds[l]!);
      if (p === undefined) continue;
      const a = Math.max(at[p]!, out[l]!); // a pod listed twice keeps its better start
      at[p] = a;
      from = Math.min(from, a);
      frontier = Math.max(frontier, a + 1);
    }
    const words = new Uint32Array(chain.buffer, chain.byteOffset, chain.length * 2);
    for (let i = from; i < chain.length && i < frontier; i++) {
      const hi = words[2 * i + 1]!;
      for (let s = this.#buckets.get(words[2 * i]!) ?? NONE; s !== NONE; s = this.#next[s]!) {
        if (this.#hi[s] !== hi || this.#exp[s]! <= now) continue;
        const p = this.#pod[s]!;
        if (at[p] === i && this.#epoch[s] === this.#podEpoch[p]) {
          at[p] = i + 1;
          frontier = Math.max(frontier, i + 2);
        }
      }
    }
    for (let l = 0; l < n; l++) {
      const p = this.#podIdx.get(podIds[l]!);
      if (p !== undefined && at[p]! > out[l]!) out[l] = at[p]!;
    }
    for (let l = 0; l < n; l++) {
      const p = this.#podIdx.get(podIds[l]!);
      if (p !== undefined) at[p] = NONE;
    }
    return out;
  }

  /**
   * The pod's cache was emptied: what was routed to it before now no longer counts as cached there (what is
   * routed to it afterwards does). Unknown pods are ignored.
   */
  clearPod(podId: string): void {
    const p = this.#podIdx.get(podId);
    if (p !== undefined) this.#podEpoch[p] = (this.#podEpoch[p]! + 1) >>> 0;
  }

  /** Removes entries whose TTL has passed (also done on every add). */
  sweep(now = this.#now()): void {
    const due = now - this.ttlMs;
    while (this.#fifoHead < this.#fifoItem.length && this.#fifoAt[this.#fifoHead]! <= due) {
      const item = this.#fifoItem[this.#fifoHead++]!;
      const s = Math.floor(item / GEN_MOD);
      // A later push refreshed the entry (its own FIFO item will expire it), or the slot was reused.
      if (this.#gen[s] !== item % GEN_MOD || this.#exp[s]! > now) continue;
      const confirmed =
        this.#isConfirmed?.(this.#podName[this.#pod[s]!]!, this.#lo[s]!, this.#hi[s]!) ?? false;
      if (confirmed) this.#confirmed++;
      else this.#expired++;
      this.#remove(s);
    }
    this.#compactFifo();
  }

  stats(): SpeculativeIndexStats {
    return {
      entries: this.#live,
      added: this.#added,
      confirmed: this.#confirmed,
      expired: this.#expired,
      evicted: this.#evicted,
    };
  }

  #find(lo: number, hi: number, p: number): number {
    for (let s = this.#buckets.get(lo) ?? NONE; s !== NONE; s = this.#next[s]!)
      if (this.#hi[s] === hi && this.#pod[s] === p) return s;
    return NONE;
  }

  #evictOldest(): void {
    while (this.#fifoHead < this.#fifoItem.length) {
      const item = this.#fifoItem[this.#fifoHead++]!;
      const s = Math.floor(item / GEN_MOD);
      if (this.#gen[s] !== item % GEN_MOD || this.#pod[s] === NONE) continue;
      this.#evicted++;
      this.#remove(s);
      return;
    }
  }

  #remove(s: number): void {
    const lo = this.#lo[s]!;
    // Unlink from its bucket.
    let prev = NONE;
    for (let c = this.#buckets.get(lo) ?? NONE; c !== NONE; prev = c, c = this.#next[c]!) {
      if (c !== s) continue;
      const nx = this.#next[s]!;
      if (prev !== NONE) this.#next[prev] = nx;
      else if (nx === NONE) this.#buckets.delete(lo);
      else this.#buckets.set(lo, nx);
      break;
    }
    const p = this.#pod[s]!;
    if (--this.#podLive[p]! === 0) {
      this.#podIdx.delete(this.#podName[p]!);
      this.#podFree.push(p);
    }
    this.#pod[s] = NONE;
    this.#gen[s] = (this.#gen[s]! + 1) % GEN_MOD;
    this.#next[s] = this.#free;
    this.#free = s;
    this.#live--;
  }

  #alloc(): number {
    if (this.#free !== NONE) {
      const s = this.#free;
      this.#free = this.#next[s]!;
      return s;
    }
    if (this.#used === this.#lo.length) this.#grow(Math.min(this.maxEntries, Math.max(1024, this.#used * 2)));
    return this.#used++;
  }

  #grow(size: number): void {
    const g32 = (a: Uint32Array) => {
      const b = new Uint32Array(size);
      b.set(a);
      return b;
    };
    const gi = (a: Int32Array) => {
      const b = new Int32Array(size);
      b.set(a);
      return b;
    };
    this.#lo = g32(this.#lo);
    this.#hi = g32(this.#hi);
    this.#gen = g32(this.#gen);
    this.#epoch = g32(this.#epoch);
    this.#pod = gi(this.#pod);
    this.#next = gi(this.#next);
    const e = new Float64Array(size);
    e.set(this.#exp);
    this.#exp = e;
  }

  #podNumber(podId: string): number {
    let p = this.#podIdx.get(podId);
    if (p !== undefined) return p;
    p = this.#podFree.pop() ?? this.#podName.length;
    this.#podIdx.set(podId, p);
    this.#podName[p] = podId;
    this.#podLive[p] = 0;
    this.#podEpoch[p] = 0;
    return p;
  }

  /** The FIFO arrays keep consumed items until half of them are consumed (amortised O(1)). */
  #compactFifo(): void {
    if (this.#fifoHead < 4096 || this.#fifoHead * 2 < this.#fifoItem.length) return;
    this.#fifoItem = this.#fifoItem.slice(this.#fifoHead);
    this.#fifoAt = this.#fifoAt.slice(this.#fifoHead);
    this.#fifoHead = 0;
  }
}
