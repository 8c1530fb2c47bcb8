// Typed arrays that grow by whole pages instead of by one copy: a 48 MB Uint32Array grown ×1.5 is a
// 120–280 ms synchronous copy on a loaded 2-core pod (mostly the page faults of the new buffer), one
// event-loop stall per growth step of the index. Growing adds pages (a small zeroed allocation each), never
// moves the old ones, and the slack is at most one page.
//
// Readers that touch several elements of one record take the page once (`page(i)`, then `i & mask`): a
// record never straddles pages when its size divides the page size (4-word block records, 2-word items).

/** Default page: 16,384 elements. Small per-pod structures pass fewer bits so an empty one stays small. */
export const PAGE_BITS = 14;

// Three classes rather than one generic: each keeps its element accesses monomorphic for V8.

export class PagedUint32Array {
  readonly pages: Uint32Array[] = [];
  /** log2 of the elements per page. */
  readonly bits: number;
  /** Offset within a page: i & mask. */
  readonly mask: number;
  readonly #size: number;

  constructor(bits = PAGE_BITS) {
    this.bits = bits;
    this.#size = 2 ** bits;
    this.mask = this.#size - 1;
  }

  /** Elements held (a multiple of the page size). */
  get length(): number {
    return this.pages.length * this.#size;
  }

  /** Grows (by whole pages, zero-filled) until `n` elements fit. */
  ensure(n: number): void {
    while (this.pages.length * this.#size < n) this.pages.push(new Uint32Array(this.#size));
  }

  get(i: number): number {
    return this.pages[i >>> this.bits]![i & this.mask]!;
  }

  set(i: number, v: number): void {
    this.pages[i >>> this.bits]![i & this.mask] = v;
  }

  /** The page holding element i (index it with `i & mask`). */
  page(i: number): Uint32Array {
    return this.pages[i >>> this.bits]!;
  }
}

export class PagedUint16Array {
  readonly pages: Uint16Array[] = [];
  /** log2 of the elements per page. */
  readonly bits: number;
  /** Offset within a page: i & mask. */
  readonly mask: number;
  readonly #size: number;

  constructor(bits = PAGE_BITS) {
    this.bits = bits;
    this.#size = 2 ** bits;
    this.mask = this.#size - 1;
  }

  /** Elements held (a multiple of the page size). */
  get length(): number {
    return this.pages.length * this.#size;
  }

  /** Grows (by whole pages, zero-filled) until `n` elements fit. */
  ensure(n: number): void {
    while (this.pages.length * this.#size < n) this.pages.push(new Uint16Array(this.#size));
  }

  get(i: number): number {
    return this.pages[i >>> this.bits]![i & this.mask]!;
  }

  set(i: number, v: number): void {
    this.pages[i >>> this.bits]![i & this.mask] = v;
  }

  /** The page holding element i (index it with `i & mask`). */
  page(i: number): Uint16Array {
    return this.pages[i >>> this.bits]!;
  }
}

export class PagedUint8Array {
  readonly pages: Uint8Array[] = [];
  /** log2 of the elements per page. */
  readonly bits: number;
  /** Offset within a page: i & mask. */
  readonly mask: number;
  readonly #size: number;

  constructor(bits = PAGE_BITS) {
    this.bits = bits;
    this.#size = 2 ** bits;
    this.mask = this.#size - 1;
  }

  /** Elements held (a multiple of the page size). */
  get length(): number {
    return this.pages.length * this.#size;
  }

  /** Grows (by whole pages, zero-filled) until `n` elements fit. */
  ensure(n: number): void {
    while (this.pages.length * this.#size < n) this.pages.push(new Uint8Array(this.#size));
  }

  get(i: number): number {
    return this.pages[i >>> this.bits]![i & this.mask]!;
  }

  set(i: number, v: number): void {
    this.pages[i >>> this.bits]![i & this.mask] = v;
  }

  /** The page holding element i (index it with `i & mask`). */
  page(i: number): Uint8Array {
    return this.pages[i >>> this.bits]!;
  }
}
