// Pool of per-block entry chunks: each block's (pod, medium) entries sit next to each other, so a lookup
// scans them sequentially instead of chasing one pointer (and one cache miss) per pod. Chunks have
// power-of-two capacities (size class c = 2^c entries), recycled through one free list per class.
//
// The pool is paged (paged-arrays.ts): it grows by one page at a time instead of one copy of the whole pool
// (a stall of tens of ms per step at millions of entries). A chunk never straddles a page, so a reader takes
// the page once per block: the tail of a page too short for the next chunk goes to the free lists instead.
import { PagedUint16Array, PagedUint32Array } from "./paged-arrays.js";

const NIL = 0xffffffff;
/** log2 of the entries per page; also the largest size class (65,536 pod/medium pairs on one block). */
const PAGE_ENTRY_BITS = 16;
const PAGE_ENTRIES = 1 << PAGE_ENTRY_BITS;
const MAX_CLASS = PAGE_ENTRY_BITS;

export class EntryChunks {
  /** Per entry, interleaved: [pod<<8 | medium, node of the pod's reverse list]; entry e at word 2e. */
  readonly items = new PagedUint32Array(PAGE_ENTRY_BITS + 1);
  /** Per entry: how many copies vLLM reported (saturating). */
  readonly ref = new PagedUint16Array(PAGE_ENTRY_BITS);
  #used = 0;
  readonly #free: number[] = new Array<number>(MAX_CLASS + 1).fill(NIL);

  /** Entry slots held by the pool (used or free), for memory accounting. */
  get capacity(): number {
    return this.ref.length;
  }

  /** Offset (in entries) of a free chunk of 2^cls entries, all on one page. */
  alloc(cls: number): number {
    if (cls > MAX_CLASS) throw new RangeError("block held by too many pod/medium pairs");
    const head = this.#free[cls]!;
    if (head !== NIL) {
      this.#free[cls] = this.items.get(2 * head);
      return head;
    }
    const size = 1 << cls;
    const inPage = this.#used & (PAGE_ENTRIES - 1);
    if (inPage + size > PAGE_ENTRIES) {
      // Hand the page's tail to the free lists as aligned power-of-two pieces, then start a new page.
      let at = this.#used;
      let rest = PAGE_ENTRIES - inPage;
      for (let c = 0; rest > 0; c++) {
        if (rest & (1 << c)) {
          this.free(at, c);
          at += 1 << c;
          rest -= 1 << c;
        }
      }
      this.#used = at;
    }
    if (this.#used + size > this.ref.length) {
      this.items.ensure(2 * (this.#used + size));
      this.ref.ensure(this.#used + size);
    }
    const off = this.#used;
    this.#used += size;
    return off;
  }

  free(off: number, cls: number): void {
    this.items.set(2 * off, this.#free[cls]!);
    this.#free[cls] = off;
  }

  /** Copies `n` entries (items and refs) from chunk `from` to chunk `to` (chunks of one page each). */
  move(from: number, to: number, n: number): void {
    const src = this.items.page(2 * from);
    const dst = this.items.page(2 * to);
    const s = (2 * from) & this.items.mask;
    const d = (2 * to) & this.items.mask;
    for (let k = 0; k < 2 * n; k++) dst[d + k] = src[s + k]!;
    const rs = this.ref.page(from);
    const rd = this.ref.page(to);
    const s2 = from & this.ref.mask;
    const d2 = to & this.ref.mask;
    for (let k = 0; k < n; k++) rd[d2 + k] = rs[s2 + k]!;
  }
}
