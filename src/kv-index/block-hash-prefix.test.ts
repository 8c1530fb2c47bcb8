// The prefix memo never changes a hash: chains from a memoised hasher equal a plain hasher's on prompts that
// share system prompts, diverge inside a block or on a block boundary, repeat, shrink and grow — and the
// shared prefixes really are served whole (prefixHits), within the memory bound.
import { describe, expect, it } from "vitest";
import { ChainPrefixMemo } from "./block-hash-prefix.js";
import { BlockHasher, type HashScheme } from "./block-hash.js";
import { seededRng } from "../../test/support/seeded-rng.js";

const rng = seededRng;

const BS = 16;

describe("BlockHasher with the prefix memo", () => {
  for (const scheme of ["sha256_cbor_64bit", "sha256_cbor", "xxhash_cbor"] as HashScheme[]) {
    it(`${scheme}: equals a plain hasher on 600 prompts sharing prefixes, serving the shared blocks whole`, () => {
      const next = rng(7);
      const plain = new BlockHasher({ scheme, hashSeed: "42", blockSize: BS });
      const memo = new BlockHasher({ scheme, hashSeed: "42", blockSize: BS, memoBlocks: 4096 });
      const systems = Array.from({ length: 6 }, (_, i) =>
        Uint32Array.from({ length: BS * (3 + i * 4) + (i % 3) * 5 }, () => Math.floor(next() * 150_000)),
      );
      // Two systems open with the same first block (candidates with one fingerprint).
      systems[1]!.set(systems[0]!.subarray(0, BS));
      for (let n = 0; n < 600; n++) {
        const sys = systems[Math.floor(next() * systems.length)]!;
        const cut = next() < 0.2 ? Math.floor(next() * sys.length) : sys.length; // shorter than remembered
        const tail = Uint32Array.from({ length: Math.floor(next() * BS * 3) }, () =>
          Math.floor(next() * 150_000),
        );
        const tokens = new Uint32Array(cut + tail.length);
        tokens.set(sys.subarray(0, cut));
        tokens.set(tail, cut);
        if (next() < 0.1 && tokens.length > 0) tokens[Math.floor(next() * tokens.length)]! ^= 1; // a flipped id
        // Sometimes a view into a larger buffer (byteOffset ≠ 0).
        const input = next() < 0.2 ? new Uint32Array(tokens.length + 3).subarray(3) : tokens;
        if (input !== tokens) input.set(tokens);
        expect([...memo.hash(input)], `prompt ${n}`).toEqual([...plain.hash(tokens)]);
      }
      expect(memo.memoStats().prefixHits).toBeGreaterThan(600 * 3);
    });
  }

  it("leaves blocks with extras (LoRA, cache salt) to the per-block path, hashing them exactly", () => {
    const plain = new BlockHasher({ scheme: "sha256_cbor_64bit", hashSeed: "0", blockSize: BS });
    const memo = new BlockHasher({
      scheme: "sha256_cbor_64bit",
      hashSeed: "0",
      blockSize: BS,
      memoBlocks: 64,
    });
    const tokens = Uint32Array.from({ length: BS * 5 }, (_, i) => i * 7);
    memo.hash(tokens);
    for (const extras of [{ lora: 3 }, { cacheSalt: "s" }, { lora: "adapter" }]) {
      expect([...memo.hash(tokens, extras)]).toEqual([...plain.hash(tokens, extras)]);
    }
    expect([...memo.hash(tokens)]).toEqual([...plain.hash(tokens)]);
    expect(memo.memoStats().prefixHits).toBe(5);
  });
});

describe("ChainPrefixMemo", () => {
  it("serves 100 long prompts that open with the same two blocks, each its own longest match", () => {
    const next = rng(3);
    const plain = new BlockHasher({ scheme: "sha256_cbor_64bit", hashSeed: "1", blockSize: BS });
    const memo = new BlockHasher({
      scheme: "sha256_cbor_64bit",
      hashSeed: "1",
      blockSize: BS,
      memoBlocks: 1 << 16,
    });
    const preamble = Uint32Array.from({ length: 2 * BS }, (_, i) => 900 + i);
    const prompts = Array.from({ length: 100 }, () => {
      const p = Uint32Array.from({ length: 20 * BS }, () => Math.floor(next() * 150_000));
      p.set(preamble);
      return p;
    });
    for (const round of [0, 1, 2]) {
      for (const p of prompts) {
        const tokens = new Uint32Array(p.length + BS);
        tokens.set(p);
        tokens.fill(round + 1, p.length); // a new last block every round
        expect([...memo.hash(tokens)]).toEqual([...plain.hash(tokens)]);
      }
    }
    // Rounds 1 and 2: the 20 system blocks of every prompt came whole (one list per first block: ~600).
    expect(memo.memoStats().prefixHits).toBeGreaterThanOrEqual(2 * 100 * 20);
  });

  it("holds at most its capacity in blocks, oldest prompts dropped first", () => {
    const m = new ChainPrefixMemo(10, BS);
    const prompt = (i: number) => Uint32Array.from({ length: BS * 4 }, (_, j) => i * 1000 + j);
    for (let i = 0; i < 5; i++) {
      m.remember(prompt(i), 4, new BigUint64Array(4), new Uint8Array(4 * 32));
      expect(m.blocks).toBeLessThanOrEqual(10);
    }
    const view = (t: Uint32Array) => Buffer.from(t.buffer, t.byteOffset, t.byteLength);
    expect(m.match(prompt(4), view(prompt(4)), 4)?.blocks).toBe(4);
    expect(m.match(prompt(0), view(prompt(0)), 4)).toBeNull();
  });
});
