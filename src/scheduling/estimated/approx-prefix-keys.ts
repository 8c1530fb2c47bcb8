// GIE-style approximate prefix keys: the prompt's characters cut into blocks of blockSizeTokens × 4 characters
// (GIE assumes ~4 characters per token), chain-hashed so a block's key depends on everything before it, at
// most `maxBlocks` of them, the trailing partial block ignored. They need no tokenizer and no KV events, so
// they work for pods that publish nothing; they only approximate vLLM's token blocks.

/** GIE's characters-per-token approximation. */
export const CHARS_PER_TOKEN = 4;

/**
 * Chained keys of the first `maxBlocks` full blocks of `text`, seeded by `seed` (GIE: the target model and
 * `cache_salt`, so equal prompts to different models or salts never share keys). Each key is a 53-bit
 * integer from two independent 32-bit lanes, exact in a double and cheap as a Map key: these are routing
 * keys of kvpick's own, never vLLM block hashes, and a collision (~2^-53 per pair) costs one wrong guess.
 */
export function approxPrefixKeys(
  text: string,
  seed: string,
  blockChars: number,
  maxBlocks: number,
): Float64Array {
  const n = Math.max(0, Math.min(maxBlocks, Math.floor(text.length / blockChars)));
  const out = new Float64Array(n);
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (let i = 0; i < seed.length; i++) {
    const c = seed.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  for (let k = 0; k < n; k++) {
    const end = (k + 1) * blockChars;
    for (let i = k * blockChars; i < end; i++) {
      const c = text.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
      b ^= b >>> 15;
    }
    // Finalise each lane (murmur3 fmix32) so near-identical blocks spread over the whole key space; the
    // finalised state also seeds the next block, which makes the chain.
    a = fmix32(a);
    b = fmix32(b ^ k);
    out[k] = (a >>> 0) * 2 ** 21 + ((b >>> 0) & 0x1fffff);
  }
  return out;
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
