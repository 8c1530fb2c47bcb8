// The few msgpack forms msgspec emits for vLLM's KV events, written byte-exactly (shortest int forms,
// float64 always — even for integral values — u64 as `cf`, str, nil, bin, arrays, maps).
// @msgpack/msgpack would write an integral ts as an int and cannot force shortest u64 forms for bigints.

export class MsgpackWriter {
  buf: Buffer;
  pos = 0;

  constructor(initial = 256) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  #ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  bytes(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }

  nil(): this {
    this.#ensure(1);
    this.buf[this.pos++] = 0xc0;
    return this;
  }

  float64(v: number): this {
    this.#ensure(9);
    this.buf[this.pos] = 0xcb;
    this.buf.writeDoubleBE(v, this.pos + 1);
    this.pos += 9;
    return this;
  }

  /** Non-negative integer below 2^32 as a JS number, shortest form. */
  uint(v: number): this {
    this.#ensure(5);
    const b = this.buf;
    if (v < 0x80) b[this.pos++] = v;
    else if (v < 0x100) {
      b[this.pos++] = 0xcc;
      b[this.pos++] = v;
    } else if (v < 0x10000) {
      b[this.pos] = 0xcd;
      b.writeUInt16BE(v, this.pos + 1);
      this.pos += 3;
    } else {
      b[this.pos] = 0xce;
      b.writeUInt32BE(v >>> 0, this.pos + 1);
      this.pos += 5;
    }
    return this;
  }

  /** u64 (bigint), shortest form. */
  u64(v: bigint): this {
    if (v <= 0xffffffffn) return this.uint(Number(v));
    this.#ensure(9);
    this.buf[this.pos] = 0xcf;
    this.buf.writeBigUInt64BE(v, this.pos + 1);
    this.pos += 9;
    return this;
  }

  str(s: string): this {
    const len = Buffer.byteLength(s);
    this.#ensure(len + 5);
    const b = this.buf;
    if (len < 32) b[this.pos++] = 0xa0 | len;
    else if (len < 0x100) {
      b[this.pos++] = 0xd9;
      b[this.pos++] = len;
    } else if (len < 0x10000) {
      b[this.pos] = 0xda;
      b.writeUInt16BE(len, this.pos + 1);
      this.pos += 3;
    } else {
      b[this.pos] = 0xdb;
      b.writeUInt32BE(len, this.pos + 1);
      this.pos += 5;
    }
    this.pos += b.write(s, this.pos, "utf8");
    return this;
  }

  bin(data: Uint8Array): this {
    this.#ensure(data.length + 5);
    const b = this.buf;
    if (data.length < 0x100) {
      b[this.pos++] = 0xc4;
      b[this.pos++] = data.length;
    } else {
      b[this.pos] = 0xc5;
      b.writeUInt16BE(data.length, this.pos + 1);
      this.pos += 3;
    }
    b.set(data, this.pos);
    this.pos += data.length;
    return this;
  }

  array(n: number): this {
    return this.#head(n, 0x90, 0xdc, 0xdd);
  }

  /** Signed 64-bit integer (int 64), for negative values tests send on purpose. */
  i64(v: bigint): this {
    this.#ensure(9);
    this.buf[this.pos] = 0xd3;
    this.buf.writeBigInt64BE(v, this.pos + 1);
    this.pos += 9;
    return this;
  }

  /**
   * Any plain value as msgspec would write it: nil, bool, shortest non-negative ints, other numbers as
   * float64 (negative integers as int 64), bigints as u64 / int 64, str, bin, arrays, string-keyed maps.
   * For the free-form parts of an event (extra keys) and deliberately malformed fields in tests.
   */
  value(v: unknown): this {
    if (v === null || v === undefined) return this.nil();
    if (typeof v === "boolean") {
      this.#ensure(1);
      this.buf[this.pos++] = v ? 0xc3 : 0xc2;
      return this;
    }
    if (typeof v === "number") {
      if (Number.isInteger(v) && v >= 0 && v < 2 ** 32) return this.uint(v);
      if (Number.isSafeInteger(v) && v < 0) return this.i64(BigInt(v));
      return this.float64(v);
    }
    if (typeof v === "bigint") return v < 0n ? this.i64(v) : this.u64(v);
    if (typeof v === "string") return this.str(v);
    if (v instanceof Uint8Array) return this.bin(v);
    if (Array.isArray(v)) {
      this.array(v.length);
      for (const x of v) this.value(x);
      return this;
    }
    const entries = Object.entries(v as Record<string, unknown>);
    this.map(entries.length);
    for (const [k, x] of entries) this.str(k).value(x);
    return this;
  }

  map(n: number): this {
    return this.#head(n, 0x80, 0xde, 0xdf);
  }

  #head(n: number, fix: number, h16: number, h32: number): this {
    this.#ensure(5);
    const b = this.buf;
    if (n < 16) b[this.pos++] = fix | n;
    else if (n < 0x10000) {
      b[this.pos] = h16;
      b.writeUInt16BE(n, this.pos + 1);
      this.pos += 3;
    } else {
      b[this.pos] = h32;
      b.writeUInt32BE(n, this.pos + 1);
      this.pos += 5;
    }
    return this;
  }
}
