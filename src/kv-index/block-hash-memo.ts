// An exact memo of recently hashed blocks: (parent digest, block tokens) → digest. Requests that share a
// long system prompt share their leading blocks, and re-hashing them (one sha256 per 64 tokens) is most of
// the per-request hashing cost. A cheap fingerprint finds the candidate slot; the hit is then verified
// against the stored parent and tokens, so a fingerprint collision costs a miss, never a wrong hash.
// Memory: capacity × (blockSize × 4 + 64) bytes in typed arrays (64-token blocks: 320 bytes per block).

export class BlockHashMemo {
  readonly capacity: number;
  readonly #bs: number;
  readonly #tokens: Uint32Array;
  /** Parent digest (32 bytes) then own digest (32 bytes) per slot. */
  readonly #digests: Uint8Array;
  readonly #keys: Float64Array;
  readonly #slotOf = new Map<number, number>();
  #next = 0;
  #size = 0;
  hits = 0;
  misses = 0;

  constructor(capacity: number, blockSize: number) {
    this.capacity = capacity;
    this.#bs = blockSize;
    this.#tokens = new Uint32Array(capacity * blockSize);
    this.#digests = new Uint8Array(capacity * 64);
    this.#keys = new Float64Array(capacity);
  }

  /** A 52-bit fingerprint of (parent digest, tokens[base .. base + blockSize)); exactness comes from `find`. */
  key(parent: Uint8Array, tokens: ArrayLike<number>, base: number): number {
    let h1 = 0x811c9dc5;
    let h2 = 0x9747b28c;
    for (let i = 0; i < 32; i += 4) {
      const w = (parent[i]! << 24) | (parent[i + 1]! << 16) | (parent[i + 2]! << 8) | parent[i + 3]!;
      h1 = Math.imul(h1 ^ w, 0x01000193);
      h2 = Math.imul(h2 ^ w, 0x5bd1e995);
    }
    for (let i = 0; i < this.#bs; i++) {
      const t = tokens[base + i]!;
      h1 = Math.imul(h1 ^ t, 0x01000193);
      h2 = Math.imul(h2 ^ (t + i), 0x5bd1e995);
      h2 ^= h2 >>> 15;
    }
    return (h1 >>> 0) * 0x100000 + (h2 >>> 12);
  }

  /** The memoised digest (a 32-byte view, valid until the next `store`) or null. */
  find(key: number, parent: Uint8Array, tokens: ArrayLike<number>, base: number): Uint8Array | null {
    const slot = this.#slotOf.get(key);
    if (slot === undefined) {
      this.misses++;
      return null;
    }
    const d = this.#digests;
    const off = slot * 64;
    for (let i = 0; i < 32; i++) {
      if (d[off + i] !== parent[i]) {
        this.misses++;
        return null;
      }
    }
    const t = this.#tokens;
    const toff = slot * this.#bs;
    for (let i = 0; i < this.#bs; i++) {
      if (t[toff + i] !== tokens[base + i]) {
        this.misses++;
        return null;
      }
    }
    this.hits++;
    return d.subarray(off + 32, off + 64);
  }

  /** Remembers one block, replacing the oldest entry when full (FIFO: shared prefixes are re-stored as they recur). */
  store(key: number, parent: Uint8Array, tokens: ArrayLike<number>, base: number, digest: Uint8Array): void {
    if (this.capacity === 0) return;
    const slot = this.#next;
    this.#next = (slot + 1) % this.capacity;
    if (this.#size === this.capacity) {
      const old = this.#keys[slot]!;
      if (this.#slotOf.get(old) === slot) this.#slotOf.delete(old);
    } else this.#size++;
    this.#keys[slot] = key;
    this.#slotOf.set(key, slot);
    this.#digests.set(parent.subarray(0, 32), slot * 64);
    this.#digests.set(digest.subarray(0, 32), slot * 64 + 32);
    const toff = slot * this.#bs;
    for (let i = 0; i < this.#bs; i++) this.#tokens[toff + i] = tokens[base + i]!;
  }
}
