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

/** "No entry / no slot" in Uint32 link fields. */
export const NIL = 0xffffffff;

const MIN_CAPACITY = 1024;
const MAX_LOAD = 0.7;

function grow32(a: Uint32Array, size: number): Uint32Array<ArrayBuffer> {
  const b = new Uint32Array(size);
  b.set(a);
  return b;
}

/** Mixes both words: tests and some publishers use small integers as hashes, real ones are uniform. */
function mix(lo: number, hi: number): number {
  let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 15;
  return h;
}

/** Words per slot record in `rec`: [lo, hi, chunk, len]. One 16-byte record = one cache line touched per
 * block on the lookup path (key compare, then where its entries are), instead of one per field array. */
export const REC = 4;
/** Offset of the block's entry chunk (owned by BlockIndex), NIL when none. */
export const CHUNK = 2;
/** Entries in the chunk. */
export const LEN = 3;

/** `#freeNext` value of a slot in use (slots stay below it: see the constructor's guard). */
const LIVE = 0xfffffffe;

export class BlockTable {
  /** Slot records, see REC. */
  rec = new Uint32Array(0);
  /** Size class of each slot's chunk (capacity 2^cls entries), owned by BlockIndex. */
  cls = new Uint8Array(0);
  /** Free-slot list, linked through this array; LIVE for a slot in use. */
  #freeNext = new Uint32Array(0);
  #free = NIL;
  #used = 0; // slots ever handed out (high-water mark)
  #count = 0;
  /** slot + 1, 0 = empty. */
  #table = new Uint32Array(MIN_CAPACITY * 2);
  #mask = MIN_CAPACITY * 2 - 1;
  /** Low bits of a cell: slot + 1. */
  readonly #slotMask: number;
  /** High bits of a cell: the key's fingerprint (0 when every bit is needed for slots). */
  readonly #tagMask: number;

  /** @param maxSlots most blocks that can ever be live at once (the index's maxEntries bounds it). */
  constructor(maxSlots = 2 ** 31) {
    let bits = 1;
    while (bits < 32 && 2 ** bits - 1 < maxSlots + 1) bits++;
    this.#slotMask = bits >= 32 ? 0xffffffff : 2 ** bits - 1;
    this.#tagMask = ~this.#slotMask >>> 0;
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
    return this.#freeNext.length * 21 + this.#table.length * 4;
  }

  /** The slot of (lo, hi), or -1. */
  find(lo: number, hi: number): number {
    const table = this.#table;
    const mask = this.#mask;
    const rec = this.rec;
    const tagMask = this.#tagMask;
    const slotMask = this.#slotMask;
    const tag = this.#tag(lo, hi);
    let i = mix(lo, hi) & mask;
    for (;;) {
      const s = table[i]!;
      if (s === 0) return -1;
      if ((s & tagMask) >>> 0 === tag) {
        const slot = ((s & slotMask) >>> 0) - 1;
        const r = slot * REC;
        if (rec[r] === lo && rec[r + 1] === hi) return slot;
      }
      i = (i + 1) & mask;
    }
  }

  /** The slot of (lo, hi), created when absent. */
  upsert(lo: number, hi: number): number {
    const found = this.find(lo, hi);
    if (found >= 0) return found;
    if (this.#count + 1 > this.#table.length * MAX_LOAD) this.#rehash(this.#table.length * 2);
    const slot = this.#alloc();
    this.rec[slot * REC] = lo;
    this.rec[slot * REC + 1] = hi;
    this.rec[slot * REC + CHUNK] = NIL;
    this.rec[slot * REC + LEN] = 0;
    this.cls[slot] = 0;
    let i = mix(lo, hi) & this.#mask;
    while (this.#table[i] !== 0) i = (i + 1) & this.#mask;
    this.#table[i] = (this.#tag(lo, hi) | (slot + 1)) >>> 0;
    this.#count++;
    return slot;
  }

  /** Removes a live slot (its entry list must already be empty). */
  free(slot: number): void {
    const lo = this.rec[slot * REC]!;
    const hi = this.rec[slot * REC + 1]!;
    const table = this.#table;
    const mask = this.#mask;
    const cell = (this.#tag(lo, hi) | (slot + 1)) >>> 0;
    let i = mix(lo, hi) & mask;
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
    this.#freeNext[slot] = this.#free;
    this.#free = slot;
    this.#count--;
  }

  #alloc(): number {
    if (this.#free !== NIL) {
      const slot = this.#free;
      this.#free = this.#freeNext[slot]!;
      this.#freeNext[slot] = LIVE;
      return slot;
    }
    // Never reached through BlockIndex (its maxEntries bounds live blocks); a cell cannot name a larger slot.
    if (this.#used + 1 > Math.min(this.#slotMask, LIVE - 1))
      throw new RangeError(`block table full: ${this.#used} slots`);
    if (this.#used === this.#freeNext.length) {
      // ×1.5 rather than ×2 keeps the slack (and so bytes per entry at a given size) lower.
      const size = Math.max(MIN_CAPACITY, Math.ceil(this.#freeNext.length * 1.5));
      this.rec = grow32(this.rec, size * REC);
      this.#freeNext = grow32(this.#freeNext, size);
      const cls = new Uint8Array(size);
      cls.set(this.cls);
      this.cls = cls;
    }
    this.#freeNext[this.#used] = LIVE;
    return this.#used++;
  }

  #rehash(size: number): void {
    // In slot order: the records are read sequentially, only the new table is written at random.
    const table = new Uint32Array(size);
    const mask = size - 1;
    const rec = this.rec;
    const freeNext = this.#freeNext;
    for (let slot = 0; slot < this.#used; slot++) {
      if (freeNext[slot] !== LIVE) continue;
      const lo = rec[slot * REC]!;
      const hi = rec[slot * REC + 1]!;
      let i = mix(lo, hi) & mask;
      while (table[i] !== 0) i = (i + 1) & mask;
      table[i] = (this.#tag(lo, hi) | (slot + 1)) >>> 0;
    }
    this.#table = table;
    this.#mask = mask;
  }

  #slotOf(cell: number): number {
    return ((cell & this.#slotMask) >>> 0) - 1;
  }

  #home(slot: number): number {
    return mix(this.rec[slot * REC]!, this.rec[slot * REC + 1]!);
  }
}
