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
