// Whole prompts recently hashed, to serve the block chain of a long shared prefix in one step. Requests that
// share a system prompt share their leading blocks, and the per-block memo (block-hash-memo.ts) still pays a
// fingerprint and a verification in JS for each of them (~0.3 µs per 64-token block, ~40 µs for 8k tokens).
// Here the longest block-aligned common prefix with a remembered prompt is found by memcmp (Buffer.compare,
// a few µs for 32 KB) and its chain and last digest are copied. Exact: a block's hash depends only on the
// tokens up to its end (same hasher: scheme, seed, block size; blocks with extras never come here), and the
// prefix is compared byte for byte. Candidates are found by a fingerprint of block DEEP − 1 (prompts of at
// least DEEP blocks) or of block 0 (shorter ones): many customers' system prompts open with the same
// preamble, and one list per first block would hold them all.
// Memory: about capacityBlocks × (blockSize × 4 + 40) bytes.

interface PrefixEntry {
  /** The prompt's tokens, full blocks only (a copy: the caller's array is theirs). */
  bytes: Buffer;
  blocks: number;
  /** The event values (as BlockHasher.hash returns them) and each block's full 32-byte digest. */
  chain: BigUint64Array;
  digests: Uint8Array;
  key: number;
  dead: boolean;
}

/**
 * Candidates kept per first-block fingerprint: prompts that open the same way (many customers' system prompts
 * share a preamble). A candidate that cannot beat the best match so far costs one memcmp, and memcmp stops at
 * the first differing byte, so a long list of other customers' prompts costs ~0.1 µs each.
 */
const PER_KEY = 64;

/** Prompts of at least this many blocks are found by their block DEEP − 1 (1,024 tokens at block size 64). */
const DEEP = 16;

export class ChainPrefixMemo {
  readonly capacityBlocks: number;
  readonly #bs: number;
  readonly #byFirst = new Map<number, PrefixEntry[]>();
  readonly #fifo: PrefixEntry[] = [];
  #fifoHead = 0;
  #blocks = 0;

  constructor(capacityBlocks: number, blockSize: number) {
    this.capacityBlocks = capacityBlocks;
    this.#bs = blockSize;
  }

  /** Blocks held (for tests and stats). */
  get blocks(): number {
    return this.#blocks;
  }

  /**
   * The remembered prompt sharing the most leading full blocks with `tokens` (at most `n` blocks), and that
   * count; null when none shares a block. `view`: `tokens`' bytes.
   */
  match(tokens: Uint32Array, view: Buffer, n: number): { entry: PrefixEntry; blocks: number } | null {
    // A long prompt sharing fewer than DEEP blocks with every long one gets at most the short entries' blocks.
    return (
      (n >= DEEP ? this.#matchIn(this.#keyOf(tokens, n), view, n) : null) ??
      this.#matchIn(this.#keyOf(tokens, 1), view, n)
    );
  }

  #matchIn(key: number, view: Buffer, n: number): { entry: PrefixEntry; blocks: number } | null {
    const list = this.#byFirst.get(key);
    if (list === undefined) return null;
    let best: PrefixEntry | null = null;
    let bestBlocks = 0;
    const blockBytes = this.#bs * 4;
    for (let i = list.length - 1; i >= 0; i--) {
      const e = list[i]!;
      const max = Math.min(n, e.blocks);
      if (max <= bestBlocks) continue;
      const beat = (bestBlocks + 1) * blockBytes;
      if (view.compare(e.bytes, 0, beat, 0, beat) !== 0) continue;
      // Invariant: the first `lo` blocks are equal, the first `hi` are not (or hi = max + 1: unknown).
      let lo = bestBlocks + 1;
      let hi = max + 1;
      if (view.compare(e.bytes, 0, max * blockBytes, 0, max * blockBytes) === 0) lo = max;
      else hi = max;
      while (hi - lo > 1) {
        const mid = (lo + hi) >>> 1;
        if (view.compare(e.bytes, 0, mid * blockBytes, 0, mid * blockBytes) === 0) lo = mid;
        else hi = mid;
      }
      if (lo > bestBlocks) {
        best = e;
        bestBlocks = lo;
        if (lo === n) break;
      }
    }
    if (best === null) return null;
    // The matched prompt moves to the end of its list (most recently used: dropped last on overflow).
    const at = list.indexOf(best);
    if (at !== list.length - 1) list.push(...list.splice(at, 1));
    return { entry: best, blocks: bestBlocks };
  }

  /** Remembers the first `n` full blocks of `tokens` with their chain and digests (n × 32 bytes). */
  remember(tokens: Uint32Array, n: number, chain: BigUint64Array, digests: Uint8Array): void {
    if (n === 0 || n > this.capacityBlocks) return;
    const bytes = Buffer.from(tokens.buffer, tokens.byteOffset, n * this.#bs * 4);
    const key = this.#keyOf(tokens, n);
    const entry: PrefixEntry = {
      bytes: Buffer.from(bytes), // a copy
      blocks: n,
      chain: chain.slice(0, n),
      digests,
      key,
      dead: false,
    };
    let list = this.#byFirst.get(key);
    if (list === undefined) {
      list = [];
      this.#byFirst.set(key, list);
    }
    list.push(entry);
    if (list.length > PER_KEY) this.#drop(list.shift()!);
    this.#fifo.push(entry);
    this.#blocks += n;
    while (this.#blocks > this.capacityBlocks && this.#fifoHead < this.#fifo.length) {
      const old = this.#fifo[this.#fifoHead++]!;
      if (old.dead) continue;
      const l = this.#byFirst.get(old.key)!;
      l.splice(l.indexOf(old), 1);
      if (l.length === 0) this.#byFirst.delete(old.key);
      this.#drop(old);
    }
    // Compact the queue now and then (its head only moves forward).
    if (this.#fifoHead > 1024 && this.#fifoHead * 2 > this.#fifo.length) {
      this.#fifo.splice(0, this.#fifoHead);
      this.#fifoHead = 0;
    }
  }

  #drop(e: PrefixEntry): void {
    if (e.dead) return;
    e.dead = true;
    this.#blocks -= e.blocks;
  }

  /**
   * The list key of a prompt of `blocks` blocks: a 32-bit fingerprint of block DEEP − 1 when it has that many,
   * else of block 0, the two kinds apart (candidates only: matches are compared byte for byte).
   */
  #keyOf(tokens: Uint32Array, blocks: number): number {
    const deep = blocks >= DEEP;
    const base = deep ? (DEEP - 1) * this.#bs : 0;
    let h = deep ? 0x9747b28c : 0x811c9dc5;
    for (let i = 0; i < this.#bs; i++) h = Math.imul(h ^ tokens[base + i]!, 0x01000193);
    return h >>> 0;
  }
}
