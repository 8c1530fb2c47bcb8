// GIE-style approximate prefix keys: the prompt's characters cut into blocks of blockSizeTokens × 4 characters
// (GIE assumes ~4 characters per token), chain-hashed so a block's key depends on everything before it, at
// most `maxBlocks` of them, the trailing partial block ignored. They need no tokenizer and no KV events, so
// they work for pods that publish nothing; they only approximate vLLM's token blocks.
//
// The hash is incremental (ApproxKeyHasher): text is fed piece by piece and feeding stops once `maxBlocks`
// keys exist, so a caller never has to build more of the prompt text than the keys cover.

/** GIE's characters-per-token approximation. */
export const CHARS_PER_TOKEN = 4;

/** The hasher's whole state between two pieces: two lanes, keys so far, characters into the open block. */
export interface ApproxKeyState {
  readonly a: number;
  readonly b: number;
  readonly keys: number;
  readonly pos: number;
}

/**
 * Chained keys of the first `maxBlocks` full blocks of the text fed to it, seeded by `seed` (GIE: the target
 * model and `cache_salt`, so equal prompts to different models or salts never share keys). Each key is a
 * 53-bit integer from two independent 32-bit lanes, exact in a double and cheap as a Map key: these are
 * routing keys of kvpick's own, never vLLM block hashes, and a collision (~2^-53 per pair) costs one wrong
 * guess.
 */
export class ApproxKeyHasher {
  readonly blockChars: number;
  readonly maxBlocks: number;
  readonly out: Float64Array;
  #a = 0x811c9dc5;
  #b = 0x9747b28c;
  #k = 0;
  #pos = 0;

  constructor(seed: string, blockChars: number, maxBlocks: number) {
    this.blockChars = blockChars;
    this.maxBlocks = Math.max(0, maxBlocks);
    this.out = new Float64Array(this.maxBlocks);
    let a = this.#a;
    let b = this.#b;
    for (let i = 0; i < seed.length; i++) {
      const c = seed.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
      b ^= b >>> 15;
    }
    this.#a = a;
    this.#b = b;
  }

  /** True once `maxBlocks` keys exist: more text changes nothing. */
  get full(): boolean {
    return this.#k >= this.maxBlocks;
  }

  /** Characters still needed to complete the last key. */
  get remaining(): number {
    return (this.maxBlocks - this.#k) * this.blockChars - this.#pos;
  }

  state(): ApproxKeyState {
    return { a: this.#a, b: this.#b, keys: this.#k, pos: this.#pos };
  }

  /** Continues from a state reached earlier on the same prefix (the keys before it already in `out`). */
  restore(s: ApproxKeyState): void {
    this.#a = s.a;
    this.#b = s.b;
    this.#k = s.keys;
    this.#pos = s.pos;
  }

  /** Feeds `text[from, to)`. */
  feed(text: string, from = 0, to = text.length): void {
    let a = this.#a;
    let b = this.#b;
    let k = this.#k;
    let pos = this.#pos;
    const bc = this.blockChars;
    const out = this.out;
    for (let i = from; i < to && k < this.maxBlocks; i++) {
      const c = text.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
      b ^= b >>> 15;
      if (++pos === bc) {
        // Finalise each lane (murmur3 fmix32) so near-identical blocks spread over the whole key space; the
        // finalised state also seeds the next block, which makes the chain.
        a = fmix32(a);
        b = fmix32(b ^ k);
        out[k++] = (a >>> 0) * 2 ** 21 + ((b >>> 0) & 0x1fffff);
        pos = 0;
      }
    }
    this.#a = a;
    this.#b = b;
    this.#k = k;
    this.#pos = pos;
  }

  /** The full blocks' keys so far. */
  keys(): Float64Array {
    return this.out.subarray(0, this.#k);
  }
}

/** The keys of a whole text at once. */
export function approxPrefixKeys(
  text: string,
  seed: string,
  blockChars: number,
  maxBlocks: number,
): Float64Array {
  const h = new ApproxKeyHasher(seed, blockChars, Math.min(maxBlocks, Math.floor(text.length / blockChars)));
  h.feed(text);
  return h.keys();
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
