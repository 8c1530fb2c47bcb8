// Pool of per-block entry chunks: each block's (pod, medium) entries sit next to each other, so a lookup
// scans them sequentially instead of chasing one pointer (and one cache miss) per pod. Chunks have
// power-of-two capacities (size class c = 2^c entries), recycled through one free list per class.

const NIL = 0xffffffff;
const MAX_CLASS = 24;

export class EntryChunks {
  /** Per entry, interleaved: [pod<<8 | medium, node of the pod's reverse list]. */
  items = new Uint32Array(0);
  /** Per entry: how many copies vLLM reported (saturating). */
  ref = new Uint16Array(0);
  #used = 0;
  readonly #free: number[] = new Array<number>(MAX_CLASS + 1).fill(NIL);

  /** Entry slots held by the pool (used or free), for memory accounting. */
  get capacity(): number {
    return this.ref.length;
  }

  /** Offset (in entries) of a free chunk of 2^cls entries. */
  alloc(cls: number): number {
    if (cls > MAX_CLASS) throw new RangeError("block held by too many pod/medium pairs");
    const head = this.#free[cls]!;
    if (head !== NIL) {
      this.#free[cls] = this.items[2 * head]!;
      return head;
    }
    const size = 1 << cls;
    if (this.#used + size > this.ref.length) {
      // ×1.5 growth keeps slack (and so bytes per entry) lower than doubling.
      const cap = Math.max(this.#used + size, 4096, Math.ceil(this.ref.length * 1.5));
      const items = new Uint32Array(cap * 2);
      items.set(this.items);
      this.items = items;
      const ref = new Uint16Array(cap);
      ref.set(this.ref);
      this.ref = ref;
    }
    const off = this.#used;
    this.#used += size;
    return off;
  }

  free(off: number, cls: number): void {
    this.items[2 * off] = this.#free[cls]!;
    this.#free[cls] = off;
  }
}
