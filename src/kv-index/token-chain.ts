// kvpick's own block-key chain (`kvpick_mmh3_64`), used when kvpick does not mirror the pods' hashes
// (kvEvents.keys tokens, or auto without a seed it can reproduce): every token-keyed BlockStored block costs
// one of these, so it must be far cheaper than vLLM's sha256 over CBOR (~10× here, measured in
// bench/kv-events.bench.ts) and it never needs the pods' seed.
//
// Recipe (fixed: keys are shared across replicas through Redis and must agree across processes, threads
// and versions). Key of block i = the first 64 bits of MurmurHash3_x86_128, seed 0, over the little-endian
// uint32 words
//   [parent.lo, parent.hi, extra.lo, extra.hi, token_0 … token_{blockSize-1}]
// as u64 = h2 · 2^32 + h1 (lo = h1, hi = h2). parent = the previous block's key, for block 0 the root =
// the same hash of the UTF-8 seed string; extra = (0, 0) for vLLM's `extra = None`, else the same hash of
// the CBOR of vLLM's extra tuple (LoRA, multimodal hashes, cache_salt: the bytes block-hash.ts encodes
// for requests and token-keys.ts for events), so a key depends on its parent, its tokens and its extras.
// MurmurHash3 is SMHasher's (public domain; Python: `mmh3.hash128(data, 0, x64arch=False)`), verified here
// by SMHasher's own verification value; all arithmetic is 32-bit (Math.imul), no bigint on the hot path.
//
// Collisions: a 64-bit key from a well-mixed hash collides with probability ~n² / 2^65 among n distinct
// blocks: at the index's default cap of 2^24 entries 2^-17 ≈ 8·10⁻⁶ (a collision only makes one prefix look
// cached on a pod that holds another: a routing miss, never a wrong answer). It is not cryptographic: a
// client who crafts colliding prompts can only mis-route its own requests.

/** The key scheme's name (a `BlockHasher` scheme next to vLLM's). */
export const TOKEN_CHAIN_SCHEME = "kvpick_mmh3_64";

const C1 = 0x239b961b;
const C2 = 0xab0e9789;
const C3 = 0x38b34ae5;
const C4 = 0xa1e38b93;

const rotl = (x: number, r: number): number => (x << r) | (x >>> (32 - r));

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** Reused result words: [h1, h2, h3, h4] of the last call. */
const H = new Uint32Array(4);

/** Murmur's finalisation of h1..h4 after `len` bytes, into H. */
function finish(h1: number, h2: number, h3: number, h4: number, len: number): void {
  h1 ^= len;
  h2 ^= len;
  h3 ^= len;
  h4 ^= len;
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  h1 = fmix(h1);
  h2 = fmix(h2);
  h3 = fmix(h3);
  h4 = fmix(h4);
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  H[0] = h1;
  H[1] = h2;
  H[2] = h3;
  H[3] = h4;
}

/**
 * MurmurHash3_x86_128 of `data` with `seed`: the 16-byte result as four uint32 words h1..h4 (the canonical
 * digest is their little-endian bytes). For the root, extras and tests; blocks take `chainKey`.
 */
export function murmur3x86_128(data: Uint8Array, seed = 0): Uint32Array {
  let h1 = seed | 0;
  let h2 = h1;
  let h3 = h1;
  let h4 = h1;
  const len = data.length;
  const nblocks = len >>> 4;
  const w = (o: number): number =>
    data[o]! | (data[o + 1]! << 8) | (data[o + 2]! << 16) | (data[o + 3]! << 24);
  for (let b = 0; b < nblocks; b++) {
    const o = b << 4;
    let k1 = w(o);
    let k2 = w(o + 4);
    let k3 = w(o + 8);
    let k4 = w(o + 12);
    k1 = Math.imul(rotl(Math.imul(k1, C1), 15), C2);
    h1 ^= k1;
    h1 = (Math.imul((rotl(h1, 19) + h2) | 0, 5) + 0x561ccd1b) | 0;
    k2 = Math.imul(rotl(Math.imul(k2, C2), 16), C3);
    h2 ^= k2;
    h2 = (Math.imul((rotl(h2, 17) + h3) | 0, 5) + 0x0bcaa747) | 0;
    k3 = Math.imul(rotl(Math.imul(k3, C3), 17), C4);
    h3 ^= k3;
    h3 = (Math.imul((rotl(h3, 15) + h4) | 0, 5) + 0x96cd1c35) | 0;
    k4 = Math.imul(rotl(Math.imul(k4, C4), 18), C1);
    h4 ^= k4;
    h4 = (Math.imul((rotl(h4, 13) + h1) | 0, 5) + 0x32ac3b17) | 0;
  }
  const t = nblocks << 4;
  const rest = len & 15;
  let k1 = 0;
  let k2 = 0;
  let k3 = 0;
  let k4 = 0;
  // Tail: bytes t+12.. into k4, t+8.. into k3, t+4.. into k2, t.. into k1 (little-endian, as SMHasher).
  for (let i = rest - 1; i >= 0; i--) {
    const v = data[t + i]!;
    if (i >= 12) k4 ^= v << ((i - 12) * 8);
    else if (i >= 8) k3 ^= v << ((i - 8) * 8);
    else if (i >= 4) k2 ^= v << ((i - 4) * 8);
    else k1 ^= v << (i * 8);
  }
  if (rest > 12) h4 ^= Math.imul(rotl(Math.imul(k4, C4), 18), C1);
  if (rest > 8) h3 ^= Math.imul(rotl(Math.imul(k3, C3), 17), C4);
  if (rest > 4) h2 ^= Math.imul(rotl(Math.imul(k2, C2), 16), C3);
  if (rest > 0) h1 ^= Math.imul(rotl(Math.imul(k1, C1), 15), C2);
  finish(h1, h2, h3, h4, len);
  return H;
}

/**
 * One link of the chain: the key of block `tokens[base .. base + blockSize)` after parent (pLo, pHi) with
 * extra (eLo, eHi), written to `out[at]` (lo) and `out[at + 1]` (hi). Equal to `murmur3x86_128` over the
 * recipe's words, without building them. Token ids are uint32 (vLLM's are below 2^31).
 */
export function chainKey(
  pLo: number,
  pHi: number,
  eLo: number,
  eHi: number,
  tokens: ArrayLike<number>,
  base: number,
  blockSize: number,
  out: Uint32Array,
  at: number,
): void {
  // The first 16-byte block is (parent, extra), mixed into h1..h4 = 0 (the seed), so h1..h3 add nothing
  // and h4 adds the new h1, as murmur3x86_128's loop does; then the tokens four by four.
  let k1 = Math.imul(rotl(Math.imul(pLo, C1), 15), C2);
  let h1 = (Math.imul(rotl(k1, 19), 5) + 0x561ccd1b) | 0;
  let k2 = Math.imul(rotl(Math.imul(pHi, C2), 16), C3);
  let h2 = (Math.imul(rotl(k2, 17), 5) + 0x0bcaa747) | 0;
  let k3 = Math.imul(rotl(Math.imul(eLo, C3), 17), C4);
  let h3 = (Math.imul(rotl(k3, 15), 5) + 0x96cd1c35) | 0;
  let k4 = Math.imul(rotl(Math.imul(eHi, C4), 18), C1);
  let h4 = (Math.imul((rotl(k4, 13) + h1) | 0, 5) + 0x32ac3b17) | 0;
  const full = base + (blockSize & ~3);
  let i = base;
  for (; i < full; i += 4) {
    k1 = Math.imul(rotl(Math.imul(tokens[i]!, C1), 15), C2);
    h1 ^= k1;
    h1 = (Math.imul((rotl(h1, 19) + h2) | 0, 5) + 0x561ccd1b) | 0;
    k2 = Math.imul(rotl(Math.imul(tokens[i + 1]!, C2), 16), C3);
    h2 ^= k2;
    h2 = (Math.imul((rotl(h2, 17) + h3) | 0, 5) + 0x0bcaa747) | 0;
    k3 = Math.imul(rotl(Math.imul(tokens[i + 2]!, C3), 17), C4);
    h3 ^= k3;
    h3 = (Math.imul((rotl(h3, 15) + h4) | 0, 5) + 0x96cd1c35) | 0;
    k4 = Math.imul(rotl(Math.imul(tokens[i + 3]!, C4), 18), C1);
    h4 ^= k4;
    h4 = (Math.imul((rotl(h4, 13) + h1) | 0, 5) + 0x32ac3b17) | 0;
  }
  const rest = base + blockSize - i; // 0..3 whole words
  if (rest > 2) h3 ^= Math.imul(rotl(Math.imul(tokens[i + 2]!, C3), 17), C4);
  if (rest > 1) h2 ^= Math.imul(rotl(Math.imul(tokens[i + 1]!, C2), 16), C3);
  if (rest > 0) h1 ^= Math.imul(rotl(Math.imul(tokens[i]!, C1), 15), C2);
  finish(h1, h2, h3, h4, (4 + blockSize) * 4);
  out[at] = H[0]!;
  out[at + 1] = H[1]!;
}

/** `f6`, CBOR None: vLLM's extra for plain blocks, keyed as extra (0, 0). */
const isNone = (cbor: Uint8Array): boolean => cbor.length === 1 && cbor[0] === 0xf6;

const utf8 = new TextEncoder();

/** The chain for one seed and block size (stateless apart from its root: safe to share). */
export class TokenChain {
  readonly blockSize: number;
  /** The root key (block 0's parent): the hash of the seed's UTF-8 bytes. */
  readonly rootLo: number;
  readonly rootHi: number;

  constructor(seed: string, blockSize: number) {
    this.blockSize = blockSize;
    const h = murmur3x86_128(utf8.encode(seed));
    this.rootLo = h[0]!;
    this.rootHi = h[1]!;
  }

  /** The extra key of vLLM's extra tuple as CBOR (`f6` = None → (0, 0)), into out[at], out[at + 1]. */
  extraKey(cbor: Uint8Array, out: Uint32Array, at: number): void {
    if (isNone(cbor)) {
      out[at] = 0;
      out[at + 1] = 0;
      return;
    }
    const h = murmur3x86_128(cbor);
    out[at] = h[0]!;
    out[at + 1] = h[1]!;
  }

  /**
   * The keys of every full block of `tokens`, block 0 with extra `extra0` and the others with `extraRest`
   * (CBOR, as block-hash.ts encodes a request's extras), as word pairs (lo, hi) of a BigUint64Array.
   */
  hash(tokens: ArrayLike<number>, extra0: Uint8Array, extraRest: Uint8Array): BigUint64Array {
    const bs = this.blockSize;
    const n = Math.floor(tokens.length / bs);
    const out = new BigUint64Array(n);
    if (n === 0) return out;
    const words = new Uint32Array(out.buffer);
    const e = new Uint32Array(4);
    this.extraKey(extra0, e, 0);
    this.extraKey(extraRest, e, 2);
    chainKey(this.rootLo, this.rootHi, e[0]!, e[1]!, tokens, 0, bs, words, 0);
    const eLo = e[2]!;
    const eHi = e[3]!;
    for (let b = 1; b < n; b++)
      chainKey(words[2 * b - 2]!, words[2 * b - 1]!, eLo, eHi, tokens, b * bs, bs, words, 2 * b);
    return out;
  }
}
