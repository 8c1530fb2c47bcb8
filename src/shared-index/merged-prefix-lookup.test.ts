import { describe, expect, it } from "vitest";
import { BlockIndex } from "../kv-index/block-index.js";
import { MergedPrefixLookup } from "../cache-view/merged-prefix-lookup.js";
import { blockHex, chainHex, hexWords } from "./redis-keys.js";
import { parseLookupReply } from "./redis-prefix-source.js";

const W = { GPU: 1, CPU: 0.8 };
const words = (...h: bigint[]) => new Uint32Array(BigUint64Array.from(h).buffer);

describe("MergedPrefixLookup", () => {
  const local = new BlockIndex({ maxEntries: 100, mediumWeights: W });
  local.store("10.0.0.1", "GPU", words(1n, 2n), 2);
  local.store("10.0.0.2", "CPU", words(1n, 2n, 3n), 3);
  const chain = BigUint64Array.of(1n, 2n, 3n);

  it("takes per pod the better of local and shared, and knows pods only Redis has seen", () => {
    const shared = new Map([
      ["10.0.0.1", { blocks: 3, weighted: 3 }], // Redis knows more (another replica's events)
      ["10.0.0.2", { blocks: 1, weighted: 1 }], // local is fresher here
      ["10.0.0.3", { blocks: 2, weighted: 1.6 }], // only in Redis
    ]);
    const m = new MergedPrefixLookup(local, chain, shared);
    const r = m.matchPrefix(chain, ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]);
    expect([...r.blocks]).toEqual([3, 3, 2, 0]);
    expect([...r.weighted].map((x) => Math.round(x * 100) / 100)).toEqual([3, 2.4, 1.6, 0]);
    expect(m.hasPod("10.0.0.3")).toBe(true);
    expect(m.hasPod("10.0.0.4")).toBe(false);
  });

  it("answers another chain from the local index alone", () => {
    const m = new MergedPrefixLookup(local, chain, new Map([["10.0.0.3", { blocks: 3, weighted: 3 }]]));
    expect([...m.matchPrefix(BigUint64Array.of(1n, 9n), ["10.0.0.3"]).blocks]).toEqual([0]);
    expect([...m.matchPrefix(BigUint64Array.of(1n, 2n, 3n), ["10.0.0.3"]).blocks]).toEqual([3]); // equal contents
  });
});

describe("redis keys and replies", () => {
  it("writes 64-bit hashes as 16 fixed-width hex digits and reads them back exactly", () => {
    const chain = BigUint64Array.of(
      0n,
      1n,
      0xffff_ffff_ffff_ffffn,
      0x8000_0000_0000_0001n,
      12056132650316601216n,
    );
    const hex = chainHex(chain);
    expect(hex).toEqual(Array.from(chain, (h) => h.toString(16).padStart(16, "0")));
    for (const [i, h] of hex.entries()) {
      const [lo, hi] = hexWords(h);
      expect(blockHex(lo, hi)).toBe(h);
      expect((BigInt(hi) << 32n) | BigInt(lo)).toBe(chain[i]);
    }
  });

  it("parses the lookup script's reply and skips malformed triples", () => {
    const m = parseLookupReply(["a", 3, "2.6", "b", "x", "1", "c", 1, "1", 42, 1, "1"]);
    expect([...m]).toEqual([
      ["a", { blocks: 3, weighted: 2.6 }],
      ["c", { blocks: 1, weighted: 1 }],
    ]);
    expect(parseLookupReply("OK").size).toBe(0);
  });
});
