// Redis key layout of the shared block index, under a configurable prefix so several pools can share one
// Redis. A block key is the prefix + "b:" + the vLLM hash as 16 fixed-width hex digits (from its two uint32
// words: a 64-bit hash never passes through a JS number).
//
//   <prefix>b:<hex16>        hash: field "<medium>|<pod>" → reference count (absent = not held)
//   <prefix>pod:<pod>        sorted set: member "<hex16><medium>", score = last store (Redis TIME, s); it
//                            lets a pod be cleared and its entries expire without scanning the keyspace
//   <prefix>podclear:<pod>:<n>  a cleared pod's former set while it is drained

export interface RedisKeys {
  readonly prefix: string;
  /** Prefix of every block key (the Lua scripts append the hex digits). */
  readonly blockPrefix: string;
  pod(podId: string): string;
  /** A fresh name for a pod set being drained. */
  podClearing(podId: string): string;
}

export function redisKeys(prefix: string): RedisKeys {
  let n = 0;
  const nonce = `${process.pid.toString(36)}${Date.now().toString(36)}`;
  return {
    prefix,
    blockPrefix: `${prefix}b:`,
    pod: (podId) => `${prefix}pod:${podId}`,
    podClearing: (podId) => `${prefix}podclear:${podId}:${nonce}.${(n++).toString(36)}`,
  };
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function hex32(w: number): string {
  return HEX[w >>> 24]! + HEX[(w >>> 16) & 0xff]! + HEX[(w >>> 8) & 0xff]! + HEX[w & 0xff]!;
}

/** The block's hex digits, most significant first, from its (lo, hi) uint32 words. */
export function blockHex(lo: number, hi: number): string {
  return hex32(hi) + hex32(lo);
}

/** Hex digits of each block of a chain, block 0 first. */
export function chainHex(chain: BigUint64Array): string[] {
  const words = new Uint32Array(chain.buffer, chain.byteOffset, chain.length * 2);
  const out: string[] = new Array(chain.length);
  for (let i = 0; i < chain.length; i++) out[i] = blockHex(words[2 * i]!, words[2 * i + 1]!);
  return out;
}

/** The (lo, hi) words of 16 hex digits (each half fits a uint32 exactly). */
export function hexWords(hex: string): [lo: number, hi: number] {
  return [Number.parseInt(hex.slice(8, 16), 16), Number.parseInt(hex.slice(0, 8), 16)];
}
