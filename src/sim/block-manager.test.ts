import { describe, expect, it } from "vitest";
import { BlockHasher } from "../kv-index/block-hash.js";
import { BlockManager, type KvSequence } from "./block-manager.js";
import type { SimBlockStored } from "./kv-event.js";

const BS = 4;
const hasher = new BlockHasher({ scheme: "sha256_cbor_64bit", hashSeed: "42", blockSize: BS });

function seq(id: string, tokens: number[], numTokens = tokens.length): KvSequence {
  const t = Uint32Array.from(tokens);
  return { id, tokenIds: t, chain: hasher.hash(t), numTokens, blocks: [], numCachedBlocks: 0 };
}
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

describe("BlockManager", () => {
  it("caches the full blocks of a prompt with one BlockStored (parent null, exact tokens)", () => {
    const bm = new BlockManager({ numGpuBlocks: 10, blockSize: BS });
    const s = seq("a", range(100, 10)); // 2 full blocks + 2 tokens
    expect(bm.allocate(s, 10)).toBe(true);
    expect(s.blocks).toHaveLength(3);
    const ev = bm.takeEvents();
    expect(ev).toHaveLength(1);
    const stored = ev[0] as SimBlockStored;
    expect(stored).toMatchObject({ type: "BlockStored", parent: null, blockSize: BS, medium: "GPU" });
    expect(stored.hashes).toEqual([...s.chain.subarray(0, 2)]);
    expect(stored.tokenIds).toEqual(range(100, 8));
    expect(bm.freeBlocks).toBe(9 - 3); // block 0 is the null block
    expect(bm.usage()).toBeCloseTo(1 - 6 / 10);
  });

  it("reuses a cached prefix, never the last prompt token, and counts references", () => {
    const bm = new BlockManager({ numGpuBlocks: 10, blockSize: BS });
    const a = seq("a", range(0, 12));
    bm.allocate(a, 12);
    bm.takeEvents();
    // Same 12 tokens: only 2 blocks hit (token 11 must be recomputed → block 2 is recomputed).
    const b = seq("b", range(0, 12));
    const hits = bm.computedBlocks(b);
    expect(hits).toEqual(a.blocks.slice(0, 2));
    expect(bm.allocate(b, 12, hits)).toBe(true);
    expect(bm.refCount(a.blocks[0]!)).toBe(2);
    // Block 2 is computed again in a new physical block: a duplicate, stored and reported again.
    const ev = bm.takeEvents() as SimBlockStored[];
    expect(ev).toHaveLength(1);
    expect(ev[0]!.parent).toBe(a.chain[1]);
    expect(ev[0]!.hashes).toEqual([a.chain[2]]);
    expect(bm.copiesOf(a.chain[2]!)).toBe(2);
    // A longer prompt sharing 3 blocks hits all 3.
    const c = seq("c", [...range(0, 12), 7, 7, 7]);
    expect(bm.computedBlocks(c)).toHaveLength(3);
    bm.free(a);
    expect(bm.refCount(b.blocks[0]!)).toBe(1);
  });

  it("evicts free cached blocks in LRU order (a request's tail first), one BlockRemoved per block", () => {
    const bm = new BlockManager({ numGpuBlocks: 5, blockSize: BS }); // 4 usable
    const a = seq("a", range(0, 8));
    bm.allocate(a, 8);
    bm.free(a); // free queue: [a1, a0] appended after the 2 never-used blocks
    bm.takeEvents();
    const b = seq("b", range(50, 12));
    expect(bm.allocate(b, 12)).toBe(true); // 3 blocks: 2 never used, then a's tail block a1
    const ev = bm.takeEvents();
    expect(ev[0]).toEqual({ type: "BlockRemoved", hashes: [a.chain[1]], medium: "GPU" });
    expect(ev[1]?.type).toBe("BlockStored");
    expect(bm.copiesOf(a.chain[0]!)).toBe(1);
    expect(bm.copiesOf(a.chain[1]!)).toBe(0);
    // Nothing left for another 2 blocks → refused without side effects.
    const c = seq("c", range(90, 8));
    expect(bm.allocate(c, 8)).toBe(false);
    expect(c.blocks).toEqual([]);
    expect(bm.takeEvents()).toEqual([]);
  });

  it("caches blocks completed by generated tokens, chained to the prompt", () => {
    const bm = new BlockManager({ numGpuBlocks: 10, blockSize: BS });
    // Prompt of 6 tokens; the request will feed 4 generated tokens (ids 900..903).
    const s = seq("g", [...range(0, 6), 900, 901, 902, 903], 6);
    bm.allocate(s, 6);
    expect((bm.takeEvents()[0] as SimBlockStored).hashes).toEqual([s.chain[0]]);
    s.numTokens = 7; // first generated token fed
    bm.allocate(s, 7);
    expect(bm.takeEvents()).toEqual([]);
    s.numTokens = 8; // block 1 = tokens 4,5,900,901 is now full
    bm.allocate(s, 8);
    const ev = bm.takeEvents() as SimBlockStored[];
    expect(ev).toHaveLength(1);
    expect(ev[0]!.parent).toBe(s.chain[0]);
    expect(ev[0]!.hashes).toEqual([s.chain[1]]);
    expect(ev[0]!.tokenIds).toEqual([4, 5, 900, 901]);
    expect(s.chain[1]).toBe(hasher.hash(Uint32Array.from([0, 1, 2, 3, 4, 5, 900, 901]))[1]);
  });

  it("resets the prefix cache only when idle (AllBlocksCleared)", () => {
    const bm = new BlockManager({ numGpuBlocks: 10, blockSize: BS });
    const s = seq("a", range(0, 8));
    bm.allocate(s, 8);
    bm.takeEvents();
    expect(bm.reset()).toBe(false);
    expect(bm.takeEvents()).toEqual([]);
    bm.free(s);
    expect(bm.reset()).toBe(true);
    expect(bm.takeEvents()).toEqual([{ type: "AllBlocksCleared" }]);
    expect(bm.computedBlocks(seq("b", range(0, 9)))).toEqual([]);
    // Reusing a formerly cached block after the reset emits no BlockRemoved.
    const big = seq("c", range(200, 36));
    expect(bm.allocate(big, 36)).toBe(true);
    expect(bm.takeEvents().filter((e) => e.type === "BlockRemoved")).toEqual([]);
  });
});
