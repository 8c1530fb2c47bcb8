// A small, strict msgpack cursor specialised for vLLM's KV-event payloads. Purpose-built rather than
// @msgpack/msgpack because (1) block hashes must go straight into uint32 word pairs without a bigint per
// hash, (2) token ids go straight into a Uint32Array, and (3) every read is bounds-checked and throws a
// DecodeError (never a RangeError deep in a library) so hostile bytes are just "malformed".

export class DecodeError extends Error {
  override readonly name = "DecodeError";
}

const MAX_DEPTH = 32; // generic values (extra_keys, unknown fields) nest a few levels at most
const textDecoder = new TextDecoder("utf-8");
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

export class MsgpackReader {
  readonly #b: Uint8Array;
  readonly #dv: DataView;
  pos = 0;

  constructor(buf: Uint8Array) {
    this.#b = buf;
    this.#dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get remaining(): number {
    return this.#b.length - this.pos;
  }

  #need(n: number): void {
    if (this.pos + n > this.#b.length) throw new DecodeError("truncated");
  }

  /** The next type byte, not consumed. */
  peek(): number {
    this.#need(1);
    return this.#b[this.pos]!;
  }

  /** Consumes a nil and returns true, or returns false without consuming. */
  nil(): boolean {
    if (this.peek() !== 0xc0) return false;
    this.pos++;
    return true;
  }

  isArray(): boolean {
    const t = this.peek();
    return (t & 0xf0) === 0x90 || t === 0xdc || t === 0xdd;
  }

  isMap(): boolean {
    const t = this.peek();
    return (t & 0xf0) === 0x80 || t === 0xde || t === 0xdf;
  }

  isStr(): boolean {
    const t = this.peek();
    return (t & 0xe0) === 0xa0 || t === 0xd9 || t === 0xda || t === 0xdb;
  }

  arrayLen(): number {
    const t = this.peek();
    let n: number;
    if ((t & 0xf0) === 0x90) n = this.#head(1, t & 0x0f);
    else if (t === 0xdc) n = this.#head(3, this.#u16(1));
    else if (t === 0xdd) n = this.#head(5, this.#u32(1));
    else throw new DecodeError(`expected array, got 0x${t.toString(16)}`);
    // Every element takes at least one byte: refuse lengths the buffer cannot hold before allocating.
    if (n > this.remaining) throw new DecodeError("truncated");
    return n;
  }

  mapLen(): number {
    const t = this.peek();
    let n: number;
    if ((t & 0xf0) === 0x80) n = this.#head(1, t & 0x0f);
    else if (t === 0xde) n = this.#head(3, this.#u16(1));
    else if (t === 0xdf) n = this.#head(5, this.#u32(1));
    else throw new DecodeError(`expected map, got 0x${t.toString(16)}`);
    if (2 * n > this.remaining) throw new DecodeError("truncated");
    return n;
  }

  str(): string {
    const t = this.peek();
    let n: number;
    if ((t & 0xe0) === 0xa0) n = this.#head(1, t & 0x1f);
    else if (t === 0xd9) n = this.#head(2, this.#u8(1));
    else if (t === 0xda) n = this.#head(3, this.#u16(1));
    else if (t === 0xdb) n = this.#head(5, this.#u32(1));
    else throw new DecodeError(`expected str, got 0x${t.toString(16)}`);
    this.#need(n);
    const start = this.pos;
    this.pos += n;
    if (n <= 32) {
      // Tags and media names are short ASCII: skip TextDecoder's call overhead.
      let s = "";
      for (let i = start; i < start + n; i++) {
        const c = this.#b[i]!;
        if (c >= 0x80) return textDecoder.decode(this.#b.subarray(start, start + n));
        s += String.fromCharCode(c);
      }
      return s;
    }
    return textDecoder.decode(this.#b.subarray(start, start + n));
  }

  /** An integer that fits a JS number exactly (|v| ≤ 2^53 − 1). */
  int(): number {
    const t = this.peek();
    const dv = this.#dv;
    if (t < 0x80) return this.#head(1, t);
    if (t >= 0xe0) return this.#head(1, t - 0x100);
    switch (t) {
      case 0xcc:
        return this.#head(2, this.#u8(1));
      case 0xcd:
        return this.#head(3, this.#u16(1));
      case 0xce:
        return this.#head(5, this.#u32(1));
      case 0xd0:
        this.#need(2);
        return this.#head(2, dv.getInt8(this.pos + 1));
      case 0xd1:
        this.#need(3);
        return this.#head(3, dv.getInt16(this.pos + 1));
      case 0xd2:
        this.#need(5);
        return this.#head(5, dv.getInt32(this.pos + 1));
      case 0xcf:
      case 0xd3: {
        this.#need(9);
        const v = t === 0xcf ? dv.getBigUint64(this.pos + 1) : dv.getBigInt64(this.pos + 1);
        if (v > MAX_SAFE || v < -MAX_SAFE) {
          throw new DecodeError("integer beyond 2^53 where a small integer was expected");
        }
        return this.#head(9, Number(v));
      }
      default:
        throw new DecodeError(`expected int, got 0x${t.toString(16)}`);
    }
  }

  /** Consumes `n` bytes and returns `v` (read before consuming). */
  #head(n: number, v: number): number {
    this.pos += n;
    return v;
  }

  #u8(off: number): number {
    this.#need(off + 1);
    return this.#b[this.pos + off]!;
  }

  #u16(off: number): number {
    this.#need(off + 2);
    return this.#dv.getUint16(this.pos + off);
  }

  #u32(off: number): number {
    this.#need(off + 4);
    return this.#dv.getUint32(this.pos + off);
  }

  /**
   * `n` integers in [0, 2^32) into a Uint32Array (token ids: a few per byte of payload, the bulk of every
   * BlockStored). Common widths are inlined with a local cursor; anything else goes through int().
   */
  uint32s(n: number): Uint32Array {
    const out = new Uint32Array(n);
    this.uint32sInto(out, 0, n);
    return out;
  }

  /** Reads out[from..to) (a sliced decode fills one huge array in several calls). */
  uint32sInto(out: Uint32Array, from: number, to: number): void {
    const b = this.#b;
    const end = b.length;
    let p = this.pos;
    for (let i = from; i < to; i++) {
      const t = p < end ? b[p]! : -1;
      if (t >= 0 && t < 0x80) {
        out[i] = t;
        p++;
      } else if (t === 0xcd && p + 3 <= end) {
        out[i] = (b[p + 1]! << 8) | b[p + 2]!;
        p += 3;
      } else if (t === 0xce && p + 5 <= end) {
        out[i] = this.#dv.getUint32(p + 1);
        p += 5;
      } else {
        this.pos = p;
        const v = this.int(); // other widths, or the DecodeError for truncation / non-ints
        if (v < 0 || v > 0xffffffff) throw new DecodeError("expected an unsigned 32-bit integer");
        out[i] = v;
        p = this.pos;
      }
    }
    this.pos = p;
  }

  float(): number {
    const t = this.peek();
    if (t === 0xcb) {
      this.#need(9);
      return this.#head(9, this.#dv.getFloat64(this.pos + 1));
    }
    if (t === 0xca) {
      this.#need(5);
      return this.#head(5, this.#dv.getFloat32(this.pos + 1));
    }
    return this.int();
  }

  /**
   * A block hash into words[2i] (lo) / words[2i+1] (hi): an int of any width (negatives as 64-bit two's
   * complement, as Python's `builtin` hash would be), or bin (its last 8 bytes, big-endian = low 64 bits).
   */
  hashInto(words: Uint32Array, i: number): void {
    const t = this.peek();
    const dv = this.#dv;
    const p = this.pos;
    if (t === 0xcf || t === 0xd3) {
      this.#need(9);
      words[2 * i + 1] = dv.getUint32(p + 1);
      words[2 * i] = dv.getUint32(p + 5);
      this.pos += 9;
      return;
    }
    if (t === 0xc4 || t === 0xc5 || t === 0xc6) {
      const hdr = t === 0xc4 ? 2 : t === 0xc5 ? 3 : 5;
      this.#need(hdr);
      const n = t === 0xc4 ? this.#b[p + 1]! : t === 0xc5 ? dv.getUint16(p + 1) : dv.getUint32(p + 1);
      this.#need(hdr + n);
      let lo = 0;
      let hi = 0;
      const end = p + hdr + n;
      for (let k = Math.max(p + hdr, end - 8); k < end; k++) {
        hi = ((hi << 8) | (lo >>> 24)) >>> 0;
        lo = ((lo << 8) | this.#b[k]!) >>> 0;
      }
      words[2 * i] = lo;
      words[2 * i + 1] = hi;
      this.pos = end;
      return;
    }
    const v = this.int(); // widths below 64 bits fit a number exactly
    words[2 * i] = v >>> 0;
    words[2 * i + 1] = v < 0 ? 0xffffffff : 0;
  }

  /** Skips one value of any type. */
  skip(depth = 0): void {
    this.any(depth, true);
  }

  /**
   * One value of any type as plain JS: ints beyond 2^53 as bigint, bin as Uint8Array, ext as
   * {extType, data}. With `discard` nothing is built.
   */
  any(depth = 0, discard = false): unknown {
    if (depth > MAX_DEPTH) throw new DecodeError("nesting too deep");
    const t = this.peek();
    if (t < 0x80 || t >= 0xe0 || (t >= 0xcc && t <= 0xd3 && t !== 0xcf && t !== 0xd3)) return this.int();
    if (t === 0xcf || t === 0xd3) {
      this.#need(9);
      const v = t === 0xcf ? this.#dv.getBigUint64(this.pos + 1) : this.#dv.getBigInt64(this.pos + 1);
      this.pos += 9;
      return v >= -MAX_SAFE && v <= MAX_SAFE ? Number(v) : v;
    }
    if (this.isStr()) return this.str();
    if (this.isArray()) {
      const n = this.arrayLen();
      if (discard) {
        for (let i = 0; i < n; i++) this.any(depth + 1, true);
        return undefined;
      }
      const out: unknown[] = [];
      for (let i = 0; i < n; i++) out.push(this.any(depth + 1));
      return out;
    }
    if (this.isMap()) {
      const n = this.mapLen();
      const out = discard ? null : new Map<unknown, unknown>();
      for (let i = 0; i < n; i++) {
        const k = this.any(depth + 1, discard);
        const v = this.any(depth + 1, discard);
        out?.set(k, v);
      }
      return out ?? undefined;
    }
    this.pos++;
    switch (t) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xca:
        this.#need(4);
        return this.#head(4, this.#dv.getFloat32(this.pos));
      case 0xcb:
        this.#need(8);
        return this.#head(8, this.#dv.getFloat64(this.pos));
      case 0xc4:
        return this.#bytes(this.#head(1, this.#u8(0)), discard);
      case 0xc5:
        return this.#bytes(this.#head(2, this.#u16(0)), discard);
      case 0xc6:
        return this.#bytes(this.#head(4, this.#u32(0)), discard);
      case 0xd4:
      case 0xd5:
      case 0xd6:
      case 0xd7:
      case 0xd8:
        return this.#ext(1 << (t - 0xd4), discard);
      case 0xc7:
        return this.#ext(this.#head(1, this.#u8(0)), discard);
      case 0xc8:
        return this.#ext(this.#head(2, this.#u16(0)), discard);
      case 0xc9:
        return this.#ext(this.#head(4, this.#u32(0)), discard);
      default:
        throw new DecodeError(`invalid msgpack type byte 0x${t.toString(16)}`);
    }
  }

  #bytes(n: number, discard: boolean): Uint8Array | undefined {
    this.#need(n);
    const start = this.pos;
    this.pos += n;
    return discard ? undefined : this.#b.slice(start, start + n);
  }

  #ext(n: number, discard: boolean): { extType: number; data: Uint8Array } | undefined {
    this.#need(1);
    const extType = this.#dv.getInt8(this.pos);
    this.pos++;
    const data = this.#bytes(n, discard);
    return data === undefined ? undefined : { extType, data };
  }
}
