// Open-addressing hash table of 64-bit block hashes → block slots, plus the per-block state the index needs
// (where its entries are). Everything lives in typed arrays: a Map<bigint, …> costs ~100 bytes and a bigint
// allocation per key, this costs 21 bytes per block plus ~6–11 bytes of table, and lookups never allocate.
//
// Keys are the (lo, hi) uint32 words of vLLM's u64 event value. Linear probing with backward-shift
// deletion (no tombstones), so a long-lived table with constant churn never degrades.

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

export class BlockTable {
  /** Slot records, see REC. */
  rec = new Uint32Array(0);
  /** Size class of each slot's chunk (capacity 2^cls entries), owned by BlockIndex. */
  cls = new Uint8Array(0);
  /** Free-slot list, linked through this array. */
  #freeNext = new Uint32Array(0);
  #free = NIL;
  #used = 0; // slots ever handed out (high-water mark)
  #count = 0;
  /** slot + 1, 0 = empty. */
  #table = new Uint32Array(MIN_CAPACITY * 2);
  #mask = MIN_CAPACITY * 2 - 1;

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
    let i = mix(lo, hi) & mask;
    for (;;) {
      const s = table[i]!;
      if (s === 0) return -1;
      const r = (s - 1) * REC;
      if (rec[r] === lo && rec[r + 1] === hi) return s - 1;
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
    this.#table[i] = slot + 1;
    this.#count++;
    return slot;
  }

  /** Removes a live slot (its entry list must already be empty). */
  free(slot: number): void {
    const lo = this.rec[slot * REC]!;
    const hi = this.rec[slot * REC + 1]!;
    const table = this.#table;
    const mask = this.#mask;
    let i = mix(lo, hi) & mask;
    while (table[i] !== slot + 1) i = (i + 1) & mask;
    // Backward-shift: pull later members of the probe run into the hole unless that moves them before home.
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const s = table[j]!;
      if (s === 0) break;
      const k = this.#home(s - 1) & mask;
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
      return slot;
    }
    if (this.#used === this.#freeNext.length) {
      // ×1.5 rather than ×2 keeps the slack (and so bytes per entry at a given size) lower.
      const size = Math.max(MIN_CAPACITY, Math.ceil(this.#freeNext.length * 1.5));
      this.rec = grow32(this.rec, size * REC);
      this.#freeNext = grow32(this.#freeNext, size);
      const cls = new Uint8Array(size);
      cls.set(this.cls);
      this.cls = cls;
    }
    return this.#used++;
  }

  #rehash(size: number): void {
    const old = this.#table;
    const table = new Uint32Array(size);
    const mask = size - 1;
    for (let j = 0; j < old.length; j++) {
      const s = old[j]!;
      if (s === 0) continue;
      let i = this.#home(s - 1) & mask;
      while (table[i] !== 0) i = (i + 1) & mask;
      table[i] = s;
    }
    this.#table = table;
    this.#mask = mask;
  }

  #home(slot: number): number {
    return mix(this.rec[slot * REC]!, this.rec[slot * REC + 1]!);
  }
}
