// A tiny canonical-CBOR writer for the one shape vLLM hashes: arrays of unsigned ints, strings, byte
// strings and null, in the exact bytes Python's `cbor2.dumps(x, canonical=True)` produces (shortest-form
// heads). It writes into a caller-owned, reusable buffer so hashing a block allocates nothing.

const enc = new TextEncoder();

export class CborWriter {
  buf: Uint8Array;
  pos = 0;

  constructor(initialSize = 1024) {
    this.buf = new Uint8Array(initialSize);
  }

  reset(): void {
    this.pos = 0;
  }

  /** The bytes written since the last reset (a view, valid until the next write). */
  view(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }

  ensure(extra: number): void {
    if (this.pos + extra <= this.buf.length) return;
    const grown = new Uint8Array(Math.max(this.buf.length * 2, this.pos + extra));
    grown.set(this.buf.subarray(0, this.pos));
    this.buf = grown;
  }

  /** A major-type head with a length/value below 2^32 (shortest form). */
  head(major: number, value: number): void {
    this.ensure(5);
    const b = this.buf;
    const m = major << 5;
    if (value < 24) b[this.pos++] = m | value;
    else if (value < 0x100) {
      b[this.pos++] = m | 24;
      b[this.pos++] = value;
    } else if (value < 0x10000) {
      b[this.pos++] = m | 25;
      b[this.pos++] = value >>> 8;
      b[this.pos++] = value & 0xff;
    } else {
      b[this.pos++] = m | 26;
      b[this.pos++] = value >>> 24;
      b[this.pos++] = (value >>> 16) & 0xff;
      b[this.pos++] = (value >>> 8) & 0xff;
      b[this.pos++] = value & 0xff;
    }
  }

  /** Unsigned int below 2^32 (token ids, LoRA ids). */
  uint(value: number): void {
    this.head(0, value);
  }

  /**
   * Unsigned 64-bit int given as 8 big-endian bytes at `src[off..off+8)`, in shortest form — how vLLM
   * 0.10's `sha256_cbor_64bit` encodes a parent hash (a small parent encodes shorter than 9 bytes).
   */
  uint64BE(src: Uint8Array, off: number): void {
    const hi = ((src[off]! << 24) | (src[off + 1]! << 16) | (src[off + 2]! << 8) | src[off + 3]!) >>> 0;
    if (hi === 0) {
      const lo = ((src[off + 4]! << 24) | (src[off + 5]! << 16) | (src[off + 6]! << 8) | src[off + 7]!) >>> 0;
      this.head(0, lo);
      return;
    }
    this.ensure(9);
    this.buf[this.pos++] = 0x1b;
    this.buf.set(src.subarray(off, off + 8), this.pos);
    this.pos += 8;
  }

  bytes(src: Uint8Array): void {
    this.head(2, src.length);
    this.ensure(src.length);
    this.buf.set(src, this.pos);
    this.pos += src.length;
  }

  text(s: string): void {
    const utf8 = enc.encode(s);
    this.head(3, utf8.length);
    this.ensure(utf8.length);
    this.buf.set(utf8, this.pos);
    this.pos += utf8.length;
  }

  arrayHead(length: number): void {
    this.head(4, length);
  }

  null(): void {
    this.ensure(1);
    this.buf[this.pos++] = 0xf6;
  }

  /**
   * Any value kvpick's msgpack reader produces (an `extra_keys` tuple of a BlockStored event), as cbor2's
   * canonical encoder writes it for the types vLLM puts there: ints of any size and sign, str, bytes, lists,
   * None and bools. Floats are written as float64 and maps in their given order (vLLM sends neither; the
   * bytes only need to be deterministic for kvpick's own keys).
   */
  value(v: unknown): void {
    if (v === null || v === undefined) this.null();
    else if (typeof v === "string") this.text(v);
    else if (typeof v === "boolean") {
      this.ensure(1);
      this.buf[this.pos++] = v ? 0xf5 : 0xf4;
    } else if (typeof v === "number") {
      if (Number.isInteger(v)) this.#int(BigInt(v));
      else {
        this.ensure(9);
        this.buf[this.pos++] = 0xfb;
        new DataView(this.buf.buffer, this.buf.byteOffset).setFloat64(this.pos, v);
        this.pos += 8;
      }
    } else if (typeof v === "bigint") this.#int(v);
    else if (v instanceof Uint8Array) this.bytes(v);
    else if (Array.isArray(v)) {
      this.arrayHead(v.length);
      for (const x of v) this.value(x);
    } else if (v instanceof Map) {
      this.head(5, v.size);
      for (const [k, x] of v) {
        this.value(k);
        this.value(x);
      }
    } else this.null(); // msgpack ext: no CBOR counterpart vLLM would hash
  }

  #int(v: bigint): void {
    const major = v < 0n ? 1 : 0;
    const n = v < 0n ? -1n - v : v;
    if (n < 0x1_0000_0000n) {
      this.head(major, Number(n));
      return;
    }
    if (n < 1n << 64n) {
      this.ensure(9);
      this.buf[this.pos++] = (major << 5) | 27;
      new DataView(this.buf.buffer, this.buf.byteOffset).setBigUint64(this.pos, n);
      this.pos += 8;
      return;
    }
    // Bignum: tag 2 (positive) / 3 (negative) + big-endian magnitude.
    const hex = n.toString(16);
    const bytes = Buffer.from(hex.length % 2 ? `0${hex}` : hex, "hex");
    this.ensure(1);
    this.buf[this.pos++] = 0xc0 | (major === 0 ? 2 : 3);
    this.bytes(bytes);
  }
}
