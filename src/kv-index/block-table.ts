// Open-addressing hash table of 64-bit block hashes → block slots, plus the per-block state the index needs
// (where its entries are). Everything lives in typed arrays: a Map<bigint, …> costs ~100 bytes and a bigint
// allocation per key, this costs 21 bytes per block plus ~6–11 bytes of table, and lookups never allocate.
//
// Keys are the (lo, hi) uint32 words of vLLM's u64 event value. Linear probing with backward-shift
// deletion (no tombstones), so a long-lived table with constant churn never degrades.
//
// A table cell holds slot + 1 in its low bits and, in the bits the largest slot number never needs, a
// fingerprint of the key: a probe that meets another key's cell is rejected there, without reading that
// key's record (a cache miss per probe on a table of millions of blocks: most of the apply cost before).
//
// No growth step stalls the event loop (issue 16): the table is 256 shards chosen by the top bits of the
// key's hash, each growing on its own (one step rehashes 1/256 of the keys: ~12,000 at 3 M blocks, not 3 M
// in one 130 ms turn), and the per-slot records live in paged arrays that grow without copying.
import { PAGE_BITS, PagedUint8Array, PagedUint32Array } from "./paged-arrays.js";

/** "No entry / no slot" in Uint32 link fields. */
export const NIL = 0xffffffff;

const SHARD_BITS = 8;
const SHARD_SHIFT = 32 - SHARD_BITS;
/** Cells of a shard's table when it is created (2,048 cells in all, as the unsharded table had). */
const MIN_SHARD_CELLS = 8;
/**
 * Load at which a shard doubles: staggered from 0.5 (shard 0) to 0.7 (the last), so the shards, which fill
 * evenly, do not all double within the same few thousand inserts (one slice of the applier could then run
 * several rehashes back to back); the average load stays ~0.45, as with one table at 0.7.
 */
const loadLimit = (shard: number) => 0.5 + (0.2 * shard) / ((1 << SHARD_BITS) - 1);

/** Mixes both words: tests and some publishers use small integers as hashes, real ones are uniform. The top
 * SHARD_BITS bits pick the shard, the low bits the home cell in it (a shard never exceeds 2^24 cells). */
function mix(lo: number, hi: number): number {
  let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 15;
  return h >>> 0;
}

/** Words per slot record: [lo, hi, chunk, len]. One 16-byte record = one cache line touched per block on
 * the lookup path (key compare, then where its entries are), instead of one per field array. */
const REC = 4;
const CHUNK = 2;
const LEN = 3;

/** `#freeNext` value of a slot in use (slots stay below it: see the constructor's guard). */
const LIVE = 0xfffffffe;

export class BlockTable {
  /** Slot records, see REC. */
  readonly #rec: PagedUint32Array;
  /** #rec's pages and addressing, held here too: the probe loops skip one object hop per record. */
  readonly #recPages: Uint32Array[];
  readonly #recBits: number;
  readonly #recMask: number;
  /** Size class of each slot's chunk (capacity 2^cls entries), owned by BlockIndex. */
  readonly #cls: PagedUint8Array;
  /** Free-slot list, linked through this array; LIVE for a slot in use. */
  readonly #freeNext: PagedUint32Array;
  #free = NIL;
  #used = 0; // slots ever handed out (high-water mark)
  #count = 0;
  /** Per shard: slot + 1 per cell, 0 = empty; its length − 1 is its mask. */
  readonly #tables: Uint32Array[] = [];
  /** Live keys per shard. */
  readonly #shardCount = new Uint32Array(1 << SHARD_BITS);
  /** Per shard: live keys past which it doubles (loadLimit × its cells). */
  readonly #shardLimit = new Uint32Array(1 << SHARD_BITS);
  #cells = 0;
  /** Low bits of a cell: slot + 1. */
  readonly #slotMask: number;
  /** High bits of a cell: the key's fingerprint (0 when every bit is needed for slots). */
  readonly #tagMask: number;

  /**
   * @param maxSlots most blocks that can ever be live at once (the index's maxEntries bounds it).
   * @param pageBits log2 of the slots per record page (fewer for the small per-pod maps).
   */
  constructor(maxSlots = 2 ** 31, pageBits = PAGE_BITS) {
    let bits = 1;
    while (bits < 32 && 2 ** bits - 1 < maxSlots + 1) bits++;
    this.#slotMask = bits >= 32 ? 0xffffffff : 2 ** bits - 1;
    this.#tagMask = ~this.#slotMask >>> 0;
    this.#rec = new PagedUint32Array(pageBits + 2); // 4 words per slot: same slots per page as the others
    this.#recPages = this.#rec.pages;
    this.#recBits = this.#rec.bits;
    this.#recMask = this.#rec.mask;
    this.#cls = new PagedUint8Array(pageBits);
    this.#freeNext = new PagedUint32Array(pageBits);
    for (let s = 0; s < 1 << SHARD_BITS; s++) {
      this.#tables.push(new Uint32Array(MIN_SHARD_CELLS));
      this.#shardLimit[s] = Math.floor(MIN_SHARD_CELLS * loadLimit(s));
    }
    this.#cells = MIN_SHARD_CELLS << SHARD_BITS;
  }

  /** The fingerprint bits of (lo, hi), positioned in a cell's high bits. */
  #tag(lo: number, hi: number): number {
    return (Math.imul(hi ^ Math.imul(lo, 0x27d4eb2d), 0x165667b1) & this.#tagMask) >>> 0;
  }

  /** Live blocks. */
  get count(): number {
    return this.#count;
  }

  /** Bytes held by the typed arrays (for stats and the memory benchmark). */
  get bytes(): number {
    return this.#freeNext.length * 21 + this.#cells * 4;
  }

  /** The slot of (lo, hi), or -1. */
  find(lo: number, hi: number): number {
    const h = mix(lo, hi);
    const table = this.#tables[h >>> SHARD_SHIFT]!;
    const mask = table.length - 1;
    const pages = this.#recPages;
    const bits = this.#recBits;
    const recMask = this.#recMask;
    const tagMask = this.#tagMask;
    const slotMask = this.#slotMask;
    const tag = this.#tag(lo, hi);
    let i = h & mask;
    for (;;) {
      const s = table[i]!;
      if (s === 0) return -1;
      if ((s & tagMask) >>> 0 === tag) {
        const slot = ((s & slotMask) >>> 0) - 1;
        const r = slot * REC;
        const page = pages[r >>> bits]!;
        const q = r & recMask;
        if (page[q] === lo && page[q + 1] === hi) return slot;
      }
      i = (i + 1) & mask;
    }
  }

  /** The slot of (lo, hi), created when absent. */
  upsert(lo: number, hi: number): number {
    const found = this.find(lo, hi);
    if (found >= 0) return found;
    const h = mix(lo, hi);
    const shard = h >>> SHARD_SHIFT;
    if (this.#shardCount[shard]! + 1 > this.#shardLimit[shard]!) this.#rehash(shard);
    const slot = this.#alloc();
    const r = slot * REC;
    const page = this.#recPages[r >>> this.#recBits]!;
    const q = r & this.#recMask;
    page[q] = lo;
    page[q + 1] = hi;
    page[q + CHUNK] = NIL;
    page[q + LEN] = 0;
    this.#cls.set(slot, 0);
    const table = this.#tables[shard]!;
    const mask = table.length - 1;
    let i = h & mask;
    while (table[i] !== 0) i = (i + 1) & mask;
    table[i] = (this.#tag(lo, hi) | (slot + 1)) >>> 0;
    this.#shardCount[shard]!++;
    this.#count++;
    return slot;
  }

  /** Removes a live slot (its entry list must already be empty). */
  free(slot: number): void {
    const page = this.#recPages[(slot * REC) >>> this.#recBits]!;
    const lo = page[(slot * REC) & this.#recMask]!;
    const hi = page[((slot * REC) & this.#recMask) + 1]!;
    const h = mix(lo, hi);
    const shard = h >>> SHARD_SHIFT;
    const table = this.#tables[shard]!;
    const mask = table.length - 1;
    const cell = (this.#tag(lo, hi) | (slot + 1)) >>> 0;
    let i = h & mask;
    while (table[i] !== cell) i = (i + 1) & mask;
    // Backward-shift: pull later members of the probe run into the hole unless that moves them before home.
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const s = table[j]!;
      if (s === 0) break;
      const k = this.#home(this.#slotOf(s)) & mask;
      if (i <= j ? i < k && k <= j : i < k || k <= j) continue;
      table[i] = s;
      i = j;
    }
    table[i] = 0;
    this.#freeNext.set(slot, this.#free);
    this.#free = slot;
    this.#shardCount[shard]!--;
    this.#count--;
  }

  /** The key's low word. */
  lo(slot: number): number {
    return this.#rec.get(slot * REC);
  }

  /** The key's high word. */
  hi(slot: number): number {
    return this.#rec.get(slot * REC + 1);
  }

  /** Offset of the block's entry chunk (owned by BlockIndex), NIL when none; free for other owners' use. */
  chunk(slot: number): number {
    return this.#rec.get(slot * REC + CHUNK);
  }

  setChunk(slot: number, v: number): void {
    this.#rec.set(slot * REC + CHUNK, v);
  }

  /** Entries in the chunk (0 for a new slot); free for other owners' use. */
  len(slot: number): number {
    return this.#rec.get(slot * REC + LEN);
  }

  setLen(slot: number, v: number): void {
    this.#rec.set(slot * REC + LEN, v);
  }

  /** Size class of the slot's chunk (0 for a new slot). */
  cls(slot: number): number {
    return this.#cls.get(slot);
  }

  setCls(slot: number, v: number): void {
    this.#cls.set(slot, v);
  }

  #alloc(): number {
    if (this.#free !== NIL) {
      const slot = this.#free;
      this.#free = this.#freeNext.get(slot);
      this.#freeNext.set(slot, LIVE);
      return slot;
    }
    // Never reached through BlockIndex (its maxEntries bounds live blocks); a cell cannot name a larger slot.
    if (this.#used + 1 > Math.min(this.#slotMask, LIVE - 1))
      throw new RangeError(`block table full: ${this.#used} slots`);
    if (this.#used === this.#freeNext.length) {
      this.#freeNext.ensure(this.#used + 1);
      this.#rec.ensure((this.#used + 1) * REC);
      this.#cls.ensure(this.#used + 1);
    }
    this.#freeNext.set(this.#used, LIVE);
    return this.#used++;
  }

  /** Doubles one shard's table. */
  #rehash(shard: number): void {
    const old = this.#tables[shard]!;
    const table = new Uint32Array(old.length * 2);
    const mask = table.length - 1;
    for (let c = 0; c < old.length; c++) {
      const s = old[c]!;
      if (s === 0) continue;
      let i = this.#home(this.#slotOf(s)) & mask;
      while (table[i] !== 0) i = (i + 1) & mask;
      table[i] = s;
    }
    this.#tables[shard] = table;
    this.#shardLimit[shard] = Math.floor(table.length * loadLimit(shard));
    this.#cells += old.length;
  }

  #slotOf(cell: number): number {
    return ((cell & this.#slotMask) >>> 0) - 1;
  }

  #home(slot: number): number {
    const r = slot * REC;
    const page = this.#recPages[r >>> this.#recBits]!;
    const q = r & this.#recMask;
    return mix(page[q]!, page[q + 1]!);
  }
}
