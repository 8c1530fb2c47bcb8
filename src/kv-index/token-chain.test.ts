import { Worker } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import { BlockHasher } from "./block-hash.js";
import { chainKey, murmur3x86_128, TOKEN_CHAIN_SCHEME, TokenChain } from "./token-chain.js";

const SEED = "kvpick-token-keys";

/** The recipe's words for one block, as bytes (what chainKey hashes without building them). */
function recipeBytes(
  p: [number, number],
  e: [number, number],
  tokens: ArrayLike<number>,
  base: number,
  bs: number,
) {
  const w = new Uint32Array(4 + bs);
  w.set([p[0], p[1], e[0], e[1]]);
  for (let i = 0; i < bs; i++) w[4 + i] = tokens[base + i]!;
  return new Uint8Array(w.buffer);
}

const hasher = (blockSize: number, seed = SEED) =>
  new BlockHasher({ scheme: TOKEN_CHAIN_SCHEME, hashSeed: seed, blockSize });
const ids = (n: number, f = (i: number) => (i * 7919 + 13) % 151_000) =>
  Array.from({ length: n }, (_, i) => f(i));

describe("kvpick's token-key chain (kvpick_mmh3_64)", () => {
  it("is MurmurHash3_x86_128: SMHasher's verification value 0xB3ECE62A", () => {
    // SMHasher VerificationTest: hash bytes 0..i-1 with seed 256 - i for i < 256, then the concatenated
    // digests with seed 0; the first little-endian word of that is the published value.
    const key = Uint8Array.from({ length: 256 }, (_, i) => i);
    const all = new Uint8Array(256 * 16);
    const view = new DataView(all.buffer);
    for (let i = 0; i < 256; i++) {
      const h = murmur3x86_128(key.subarray(0, i), 256 - i);
      for (let j = 0; j < 4; j++) view.setUint32(i * 16 + j * 4, h[j]!, true);
    }
    expect(murmur3x86_128(all, 0)[0]!.toString(16)).toBe("b3ece62a");
  });

  it("computes each block exactly as murmur3x86_128 over the recipe's words, for every tail length", () => {
    const out = new Uint32Array(2);
    for (const bs of [1, 2, 3, 4, 5, 6, 7, 8, 15, 16, 17, 64]) {
      const toks = ids(3 * bs, (i) => (i * 2654435761) >>> 0); // full uint32 range
      const p: [number, number] = [0xdeadbeef, 0x01234567];
      const e: [number, number] = [0x89abcdef, 0xfedcba98];
      chainKey(p[0], p[1], e[0], e[1], toks, bs, bs, out, 0);
      const ref = murmur3x86_128(recipeBytes(p, e, toks, bs, bs));
      expect([out[0], out[1]], `block size ${bs}`).toEqual([ref[0], ref[1]]);
    }
  });

  it("gives the values of an independent Python implementation (pinned: replicas and versions must agree)", () => {
    // mmh3 reimplemented in Python (verified by the same SMHasher value) over the recipe in token-chain.ts.
    expect(hasher(64).noneHash).toBe(5620351779608952376n);
    expect([...hasher(64).hash(ids(128, (i) => i))]).toEqual([17328868060013091743n, 688152639562178461n]);
    expect([...hasher(5).hash(ids(15, (i) => 151000 - i * 7))]).toEqual([
      9239523111620050285n,
      18366757731974692751n,
      9630498934322356460n,
    ]);
    expect([
      ...hasher(64).hash(
        ids(128, (i) => i),
        { lora: "Alice" },
      ),
    ]).toEqual([4676612251083337324n, 13189662703841642095n]);
  });

  it("chains: a block's key depends on every earlier block, and on nothing after it", () => {
    const h = hasher(16);
    const base = ids(16 * 6);
    const keys = [...h.hash(base)];
    for (const changed of [0, 2, 5]) {
      const toks = base.slice();
      toks[changed * 16 + 3]! += 1;
      const other = [...h.hash(toks)];
      for (let b = 0; b < 6; b++) {
        if (b < changed) expect(other[b], `block ${b} before ${changed}`).toBe(keys[b]);
        else expect(other[b], `block ${b} from ${changed}`).not.toBe(keys[b]);
      }
    }
    // The same tokens after another parent get another key.
    const a = [...h.hash([...ids(16, () => 1), ...ids(16, () => 9)])];
    const b = [...h.hash([...ids(16, () => 2), ...ids(16, () => 9)])];
    expect(a[1]).not.toBe(b[1]);
    // A trailing partial block is not hashed.
    expect(h.hash(base.slice(0, 16 * 2 + 15)).length).toBe(2);
  });

  it("changes every key with the extra keys: LoRA on every block, cache_salt on block 0 only", () => {
    const h = hasher(16);
    const toks = ids(16 * 3);
    const plain = [...h.hash(toks)];
    const cases = [{ lora: "Alice" }, { lora: "Bob" }, { lora: 7 }, { cacheSalt: "s1" }, { cacheSalt: "s2" }];
    const seen = new Set(plain.map(String));
    for (const extras of cases) {
      const keys = [...h.hash(toks, extras)];
      for (const k of keys) {
        expect(seen.has(String(k)), JSON.stringify(extras)).toBe(false);
        seen.add(String(k));
      }
    }
    // An empty salt and a null LoRA are vLLM's None: no extra.
    expect([...h.hash(toks, { cacheSalt: "", lora: null })]).toEqual(plain);
    // The event side's extra (CBOR of vLLM's tuple, multimodal hashes included) goes through the same key.
    const chain = h.tokenChain!;
    const e = new Uint32Array(4);
    chain.extraKey(new Uint8Array([0x81, 0x65, ...new TextEncoder().encode("Alice")]), e, 0);
    chain.extraKey(new Uint8Array([0x82, 0x65, ...new TextEncoder().encode("Alice"), 0x61, 0x78]), e, 2);
    expect([e[0], e[1]]).not.toEqual([e[2], e[3]]);
  });

  it("agrees with chainBlock, the generic link token-keys.ts and sim pods may use", () => {
    const h = hasher(8);
    const toks = ids(8 * 4);
    const keys = [...h.hash(toks, { lora: "Alice" })];
    const extra = new Uint8Array([0x81, 0x65, ...new TextEncoder().encode("Alice")]);
    let parent = h.rootDigest;
    for (let b = 0; b < 4; b++) {
      parent = h.chainBlock(parent, toks, b * 8, extra);
      expect(new DataView(parent.buffer).getBigUint64(24, false)).toBe(keys[b]);
    }
  });

  it("depends on the seed string (the root)", () => {
    expect([...hasher(4, "a").hash(ids(8))]).not.toEqual([...hasher(4, "b").hash(ids(8))]);
    expect(new TokenChain("a", 4).rootLo).not.toBe(new TokenChain("b", 4).rootLo);
  });

  it("gives a worker thread the same keys as the main thread (tokenizer workers hash long prompts)", async () => {
    const toks = ids(64 * 40);
    const mine = [...hasher(64).hash(toks, { lora: "Alice", cacheSalt: "x" })].map(String);
    const url = new URL("./block-hash.js", import.meta.url).href;
    const code = `
      const { parentPort, workerData } = require("node:worker_threads");
      import(workerData.url).then(({ BlockHasher }) => {
        const h = new BlockHasher({ scheme: "${TOKEN_CHAIN_SCHEME}", hashSeed: "${SEED}", blockSize: 64, memoBlocks: 1024 });
        const keys = h.hash(workerData.toks, { lora: "Alice", cacheSalt: "x" });
        parentPort.postMessage(Array.from(keys, String));
      });`;
    const theirs = await new Promise<string[]>((resolve, reject) => {
      const w = new Worker(code, { eval: true, workerData: { url, toks: Uint32Array.from(toks) } });
      w.once("message", (m: string[]) => {
        resolve(m);
        void w.terminate();
      });
      w.once("error", reject);
    });
    expect(theirs).toEqual(mine);
    expect(theirs.length).toBe(40);
  });
});
