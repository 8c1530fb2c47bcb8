import { describe, expect, it } from "vitest";
import { BlockIndex } from "../../kv-index/block-index.js";
import { RECORD_SLICE, SpeculativePrefixLookup } from "./speculative-prefix-lookup.js";

const H = (i: number) => (BigInt(i + 1) * 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
const chain = (n: number) => BigUint64Array.from({ length: n }, (_, i) => H(i));
const words = (c: BigUint64Array) => new Uint32Array(c.buffer, c.byteOffset, c.length * 2);

describe("SpeculativePrefixLookup", () => {
  it("a pod's prefix is the longer of vLLM's confirmed blocks and the blocks just routed there", () => {
    let now = 0;
    const index = new BlockIndex({ maxEntries: 1000, mediumWeights: { GPU: 1, CPU: 0.8 } });
    const lookup = new SpeculativePrefixLookup(index, { ttlMs: 2000, maxEntries: 1000, now: () => now });
    const c = chain(10);
    index.store("a", "CPU", words(c), 4); // vLLM confirmed blocks 0..3 on a, in CPU memory
    index.store("b", "GPU", words(chain(1)), 1);
    expect(lookup.matchPrefix(c, ["a", "b"])).toEqual({
      blocks: Uint32Array.from([4, 1]),
      weighted: Float64Array.from([3.2, 1]),
    });
    lookup.record("a", c); // routed: blocks 4..9 now count as cached on a (GPU: being computed)
    expect(lookup.matchPrefix(c, ["a", "b"])).toEqual({
      blocks: Uint32Array.from([10, 1]),
      weighted: Float64Array.from([3.2 + 6, 1]),
    });
    expect(lookup.stats()).toMatchObject({ entries: 6, added: 6, hits: 1 });
    expect(lookup.hasPod("a")).toBe(true);
    expect(lookup.hasPod("c")).toBe(false);

    // vLLM stores blocks 4..7 (the request got that far); after the TTL only confirmed blocks remain.
    index.store("a", "GPU", words(c).subarray(8), 4);
    now = 2000;
    expect(lookup.matchPrefix(c, ["a"]).blocks[0]).toBe(8);
    expect(lookup.stats()).toMatchObject({ entries: 0, confirmed: 4, expired: 2 });
  });

  it("records a huge chain a slice per loop turn, prefix first, and all of it in the end", async () => {
    const index = new BlockIndex({ maxEntries: 100_000, mediumWeights: { GPU: 1 } });
    const lookup = new SpeculativePrefixLookup(index, { ttlMs: 60_000, maxEntries: 100_000 });
    const n = RECORD_SLICE * 4 + 100;
    const c = chain(n);
    index.store("a", "GPU", words(c), 10); // vLLM already holds the first 10 blocks
    lookup.record("a", c);
    c.fill(0n); // the caller's array may be reused: the recording must not depend on it
    const whole = chain(n);
    expect(lookup.stats().entries).toBe(RECORD_SLICE); // one slice now, beyond the confirmed blocks
    expect(lookup.matchPrefix(whole, ["a"]).blocks[0]).toBe(10 + RECORD_SLICE);
    let turns = 0;
    while (lookup.stats().entries < n - 10 && turns < 100) {
      await new Promise((r) => setImmediate(r));
      turns++;
      expect(lookup.stats().entries).toBeLessThanOrEqual(RECORD_SLICE * (turns + 1));
    }
    expect(turns).toBeGreaterThanOrEqual(3);
    expect(lookup.stats().entries).toBe(n - 10);
    expect(lookup.matchPrefix(whole, ["a"]).blocks[0]).toBe(n);
  });
});
