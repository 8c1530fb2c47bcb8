// One pod's map engine hash → kvpick key, for the token-keyed index (kvEvents.keys tokens/auto): vLLM's
// `parent_block_hash` and `BlockRemoved` name blocks by the engine's hash, the index holds kvpick's own key,
// and the next block's key is chained from this block's full digest. Everything lives in typed arrays.
//
// Layout per entry: a BlockTable slot keyed by the engine hash (its two spare words hold the kvpick key),
// the chain state (0 bytes for sha256_cbor_64bit, whose state is the key itself; 16 for xxhash_cbor; 32 for
// sha256_cbor) and two links of an oldest → newest list. Bytes per entry: 21 (slot) + ~6–11 (table) + 8
// (links) + the state, i.e. ~40 / ~56 / ~72; `bytes` reports the real figure. The map is bounded by the
// index: entries leave when the index no longer holds their block for the pod, and the oldest go first when
// the map outgrows the pod's index entries (the index evicts a pod's oldest entries first too).
import { BlockTable, NIL } from "./block-table.js";
import { PagedUint8Array, PagedUint32Array } from "./paged-arrays.js";

/** log2 of the slots per page: small, there is one map per pod; paged so no growth step copies it all. */
const PAGE_BITS = 10;

export class EngineKeyMap {
  /** Bytes of chain state kept per entry: 0, 16 (xxhash_cbor, digest bytes 16..31) or 32. */
  readonly stateBytes: number;
  /** Small record pages (1,024 slots): there is one map per pod. */
  readonly #table = new BlockTable(2 ** 31, PAGE_BITS);
  /** stateBytes per slot (a power of two, so an entry never straddles a page). */
  readonly #state: PagedUint8Array;
  readonly #prev = new PagedUint32Array(PAGE_BITS);
  readonly #next = new PagedUint32Array(PAGE_BITS);
  /** Oldest and newest entries (slots), NIL when empty. */
  #oldest = NIL;
  #newest = NIL;

  constructor(stateBytes: 0 | 16 | 32) {
    this.stateBytes = stateBytes;
    this.#state = new PagedUint8Array(PAGE_BITS + Math.log2(Math.max(1, stateBytes)));
  }

  get size(): number {
    return this.#table.count;
  }

  get bytes(): number {
    return this.#table.bytes + this.#prev.length * 8 + this.#state.length;
  }

  /** The slot of engine hash (lo, hi), or -1. */
  find(lo: number, hi: number): number {
    return this.#table.find(lo, hi);
  }

  keyLo(slot: number): number {
    return this.#table.chunk(slot);
  }

  keyHi(slot: number): number {
    return this.#table.len(slot);
  }

  /** Writes the entry's chain state into a 32-byte parent buffer (the layout BlockHasher.chainBlock reads). */
  stateInto(slot: number, out: Uint8Array): void {
    const n = this.stateBytes;
    if (n > 0) {
      const page = this.#state.page(slot * n);
      const q = (slot * n) & this.#state.mask;
      for (let k = 0; k < n; k++) out[32 - n + k] = page[q + k]!;
      return;
    }
    const lo = this.keyLo(slot);
    const hi = this.keyHi(slot);
    out[24] = hi >>> 24;
    out[25] = (hi >>> 16) & 0xff;
    out[26] = (hi >>> 8) & 0xff;
    out[27] = hi & 0xff;
    out[28] = lo >>> 24;
    out[29] = (lo >>> 16) & 0xff;
    out[30] = (lo >>> 8) & 0xff;
    out[31] = lo & 0xff;
  }

  /**
   * Maps engine hash (lo, hi) to kvpick key (keyLo, keyHi) with chain state `digest` (32 bytes, the last
   * `stateBytes` kept). A new entry becomes the newest; an existing one keeps its age (as the index does
   * for a re-stored block) and takes the new key.
   */
  set(lo: number, hi: number, keyLo: number, keyHi: number, digest: Uint8Array): void {
    const t = this.#table;
    const before = t.count;
    const slot = t.upsert(lo, hi);
    t.setChunk(slot, keyLo);
    t.setLen(slot, keyHi);
    if (slot >= this.#prev.length) {
      this.#prev.ensure(slot + 1);
      this.#next.ensure(slot + 1);
      this.#state.ensure((slot + 1) * this.stateBytes);
    }
    const n = this.stateBytes;
    if (n > 0) {
      const page = this.#state.page(slot * n);
      const q = (slot * n) & this.#state.mask;
      for (let k = 0; k < n; k++) page[q + k] = digest[32 - n + k]!;
    }
    if (t.count === before) return;
    this.#prev.set(slot, this.#newest);
    this.#next.set(slot, NIL);
    if (this.#newest !== NIL) this.#next.set(this.#newest, slot);
    else this.#oldest = slot;
    this.#newest = slot;
  }

  /** Removes an entry by slot. */
  deleteSlot(slot: number): void {
    const prev = this.#prev.get(slot);
    const next = this.#next.get(slot);
    if (prev !== NIL) this.#next.set(prev, next);
    else this.#oldest = next;
    if (next !== NIL) this.#prev.set(next, prev);
    else this.#newest = prev;
    this.#table.free(slot);
  }

  /** Removes the oldest `count` entries (or all). */
  evictOldest(count: number): void {
    while (count-- > 0 && this.#oldest !== NIL) this.deleteSlot(this.#oldest);
  }
}
