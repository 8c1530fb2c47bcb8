// A KV block pool that behaves like vLLM v1's (vllm/v1/core/block_pool.py + kv_cache_manager.py, v0.10):
// - capacity `numGpuBlocks` blocks of `blockSize` tokens; block 0 is vLLM's reserved null block;
// - prefix reuse by exact chained block hash (hashes come from kvpick's BlockHasher over the exact tokens);
//   a hit never covers the last prompt token (vLLM recomputes it to get logits);
// - reference counts per running request; freed blocks join an LRU free queue (a request's blocks in
//   reverse order, so its tail is evicted first) and stay cached until reused;
// - eviction = popping a cached block off the free queue for a new allocation → one BlockRemoved each;
// - every block that becomes full (prompt or generated tokens) is cached → BlockStored per request per
//   allocation, parent = the block before them; duplicates (two requests computing the same block at once)
//   are cached and reported twice, as in vLLM;
// - reset() = reset_prefix_cache: refused while blocks are in use, else AllBlocksCleared.
import type { SimKvEvent } from "./kv-event.js";

export interface BlockManagerOptions {
  numGpuBlocks: number;
  blockSize: number;
}

/** A request's view of its KV blocks. The engine owns the token counters; the manager owns `blocks`. */
export interface KvSequence {
  readonly id: string;
  /** Every token the request will ever feed to the model (prompt, then its generated tokens). */
  readonly tokenIds: ArrayLike<number>;
  /** vLLM block hashes of tokenIds' full blocks (BlockHasher.hash(tokenIds, extras)). */
  readonly chain: BigUint64Array;
  /** Tokens known so far (prompt + generated, i.e. vLLM request.num_tokens). */
  numTokens: number;
  /** Physical block ids, in order. */
  blocks: number[];
  /** How many of `blocks` are registered in the prefix cache. */
  numCachedBlocks: number;
}

const NONE = -1;

export class BlockManager {
  readonly numGpuBlocks: number;
  readonly blockSize: number;
  readonly #ref: Int32Array;
  readonly #hash: BigUint64Array;
  readonly #hashed: Uint8Array;
  // Free queue: doubly linked list over block ids; head is evicted first (least recently freed).
  readonly #prev: Int32Array;
  readonly #next: Int32Array;
  readonly #inFree: Uint8Array;
  #head = NONE;
  #tail = NONE;
  #free = 0;
  /** hash → physical blocks holding it (usually one; more for concurrent duplicates). */
  readonly #cached = new Map<bigint, number[]>();
  #events: SimKvEvent[] = [];

  constructor(options: BlockManagerOptions) {
    const n = options.numGpuBlocks;
    if (!Number.isInteger(n) || n < 2) throw new RangeError(`numGpuBlocks must be an integer ≥ 2, got ${n}`);
    if (!Number.isInteger(options.blockSize) || options.blockSize < 1)
      throw new RangeError(`blockSize must be a positive integer, got ${options.blockSize}`);
    this.numGpuBlocks = n;
    this.blockSize = options.blockSize;
    this.#ref = new Int32Array(n);
    this.#hash = new BigUint64Array(n);
    this.#hashed = new Uint8Array(n);
    this.#prev = new Int32Array(n).fill(NONE);
    this.#next = new Int32Array(n).fill(NONE);
    this.#inFree = new Uint8Array(n);
    // Block 0 is vLLM's null block (placeholder for skipped blocks): never free, never cached.
    this.#ref[0] = 1;
    for (let b = 1; b < n; b++) this.#append(b);
  }

  get freeBlocks(): number {
    return this.#free;
  }

  /** vLLM's `vllm:kv_cache_usage_perc`: 1 − free / num_gpu_blocks (the null block counts as used). */
  usage(): number {
    return 1 - this.#free / this.numGpuBlocks;
  }

  /** Distinct block hashes currently cached. */
  get cachedHashes(): number {
    return this.#cached.size;
  }

  /**
   * The longest run of cached blocks from block 0 of `seq.chain`, capped so at least the last token of
   * `seq.numTokens` is recomputed (vLLM `get_computed_blocks`). Does not take references.
   */
  computedBlocks(seq: KvSequence): number[] {
    const maxBlocks = Math.min(Math.floor((seq.numTokens - 1) / this.blockSize), seq.chain.length);
    const out: number[] = [];
    for (let i = 0; i < maxBlocks; i++) {
      const holders = this.#cached.get(seq.chain[i]!);
      if (holders === undefined) break;
      out.push(holders[0]!);
    }
    return out;
  }

  /**
   * vLLM `allocate_slots`: make room for `seq` to hold `totalTokens` computed tokens, first adopting
   * `newComputed` (cache hits from computedBlocks, only when the sequence holds no blocks yet). Caches
   * every block that becomes full. Returns false, changing nothing, when the pool cannot fit it.
   */
  allocate(seq: KvSequence, totalTokens: number, newComputed: readonly number[] = []): boolean {
    const bs = this.blockSize;
    const required = Math.ceil(totalTokens / bs);
    const newBlocks = Math.max(0, required - seq.blocks.length - newComputed.length);
    let evictableComputed = 0;
    for (const b of newComputed) if (this.#ref[b] === 0) evictableComputed++;
    if (newBlocks > this.#free - evictableComputed) return false;
    if (newComputed.length > 0) {
      for (const b of newComputed) this.#touch(b);
      seq.blocks.push(...newComputed);
      seq.numCachedBlocks = seq.blocks.length;
    }
    for (let i = 0; i < newBlocks; i++) seq.blocks.push(this.#takeFree());
    this.#cacheFull(seq, Math.floor(Math.min(totalTokens, seq.numTokens) / bs));
    return true;
  }

  /** Releases `seq`'s blocks (request finished, aborted or preempted); cached ones stay reusable. */
  free(seq: KvSequence): void {
    for (let i = seq.blocks.length - 1; i >= 0; i--) {
      const b = seq.blocks[i]!;
      if (--this.#ref[b]! === 0) this.#append(b);
    }
    seq.blocks = [];
    seq.numCachedBlocks = 0;
  }

  /** vLLM `reset_prefix_cache`: forgets every cached hash; refused (false) while any block is in use. */
  reset(): boolean {
    if (this.#free !== this.numGpuBlocks - 1) return false;
    this.#cached.clear();
    this.#hashed.fill(0);
    this.#events.push({ type: "AllBlocksCleared" });
    return true;
  }

  /** Events since the last call, in the order they happened (one engine step's batch). */
  takeEvents(): SimKvEvent[] {
    const e = this.#events;
    this.#events = [];
    return e;
  }

  /** Cached copies of `hash` (tests). */
  copiesOf(hash: bigint): number {
    return this.#cached.get(hash)?.length ?? 0;
  }

  refCount(block: number): number {
    return this.#ref[block]!;
  }

  #cacheFull(seq: KvSequence, fullBlocks: number): void {
    const from = seq.numCachedBlocks;
    const upTo = Math.min(fullBlocks, seq.blocks.length, seq.chain.length);
    if (upTo <= from) return;
    const hashes: bigint[] = [];
    for (let i = from; i < upTo; i++) {
      const b = seq.blocks[i]!;
      const h = seq.chain[i]!;
      this.#hash[b] = h;
      this.#hashed[b] = 1;
      const holders = this.#cached.get(h);
      if (holders === undefined) this.#cached.set(h, [b]);
      else holders.push(b);
      hashes.push(h);
    }
    const bs = this.blockSize;
    this.#events.push({
      type: "BlockStored",
      hashes,
      parent: from === 0 ? null : seq.chain[from - 1]!,
      tokenIds: Array.from({ length: (upTo - from) * bs }, (_, i) => seq.tokenIds[from * bs + i]!),
      blockSize: bs,
      medium: "GPU",
    });
    seq.numCachedBlocks = upTo;
  }

  #touch(b: number): void {
    if (this.#ref[b] === 0) this.#unlink(b);
    this.#ref[b]!++;
  }

  /** Pops the least recently freed block; evicting its cached hash emits BlockRemoved. */
  #takeFree(): number {
    const b = this.#head;
    if (b === NONE) throw new Error("block pool exhausted (allocate checked capacity first)");
    this.#unlink(b);
    this.#ref[b] = 1;
    if (this.#hashed[b] === 1) {
      this.#hashed[b] = 0;
      const h = this.#hash[b]!;
      const holders = this.#cached.get(h);
      if (holders !== undefined) {
        const i = holders.indexOf(b);
        if (i >= 0) holders.splice(i, 1);
        if (holders.length === 0) this.#cached.delete(h);
        this.#events.push({ type: "BlockRemoved", hashes: [h], medium: "GPU" });
      }
    }
    return b;
  }

  #append(b: number): void {
    this.#prev[b] = this.#tail;
    this.#next[b] = NONE;
    if (this.#tail === NONE) this.#head = b;
    else this.#next[this.#tail] = b;
    this.#tail = b;
    this.#inFree[b] = 1;
    this.#free++;
  }

  #unlink(b: number): void {
    if (this.#inFree[b] !== 1) return;
    const p = this.#prev[b]!;
    const n = this.#next[b]!;
    if (p === NONE) this.#head = n;
    else this.#next[p] = n;
    if (n === NONE) this.#tail = p;
    else this.#prev[n] = p;
    this.#prev[b] = NONE;
    this.#next[b] = NONE;
    this.#inFree[b] = 0;
    this.#free--;
  }
}
