// Deterministic, cheap randomness and number formatting shared by the benchmarks.

/** xorshift32 from `seed`: uniform like sha256's low bits, cheap enough not to dominate the timings. */
export function xorshift32(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

/** A 64-bit hash value (as vLLM's events carry them) from two 32-bit draws. */
export const hash64From = (rnd32: () => number) => (): bigint => (BigInt(rnd32()) << 32n) | BigInt(rnd32());

/** 1,234,567.89 — at most `digits` decimals. */
export const fmt = (n: number, digits = 2): string =>
  n.toLocaleString("en-US", { maximumFractionDigits: digits });
