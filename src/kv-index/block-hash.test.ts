import { describe, expect, it } from "vitest";
import { loadVector } from "../../test/support/golden.js";
import { BlockHasher, type HashScheme, toDecimalStrings } from "./block-hash.js";
import { CborWriter } from "./cbor-writer.js";
import { turnsWhile } from "../../test/support/loop-turns.js";

interface HashCase {
  name: string;
  scheme: string;
  pythonhashseed: string;
  block_size: number;
  tokens: { range?: [number, number]; ids?: number[] } | number[];
  lora_key: number | string | null;
  cache_salt: string | null;
  none_hash: { event_value_dec?: string; hash_dec?: string };
  num_full_blocks: number;
  blocks: { block_index: number; event_value_dec: string; cbor_input_hex: string }[];
}
interface HashVectors {
  cases: HashCase[];
  external_cross_checks: {
    name: string;
    scheme: string;
    pythonhashseed: string;
    block_size: number;
    lora_key: number | string | null;
    token_ids: number[];
    expected_event_values_dec: string[];
  }[];
}

const vectors = loadVector<HashVectors>("vllm-block-hashes.json");
const supported = new Set<string>(["sha256_cbor_64bit", "sha256_cbor", "xxhash_cbor"]);

function tokensOf(c: HashCase): number[] {
  const t = c.tokens;
  if (Array.isArray(t)) return t;
  if (t.ids) return t.ids;
  if (t.range) return Array.from({ length: t.range[1] - t.range[0] }, (_, i) => t.range![0] + i);
  throw new Error(`case ${c.name}: unknown tokens form`);
}

describe("BlockHasher golden vectors (shared/vectors/vllm-block-hashes.json)", () => {
  it("has cases for both supported schemes", () => {
    const schemes = new Set(vectors.cases.map((c) => c.scheme));
    expect(schemes.has("sha256_cbor_64bit")).toBe(true);
    expect(schemes.has("sha256_cbor")).toBe(true);
    expect(schemes.has("xxhash_cbor")).toBe(true);
  });

  for (const c of vectors.cases.filter((x) => supported.has(x.scheme))) {
    it(`matches ${c.name}`, () => {
      const hasher = new BlockHasher({
        scheme: c.scheme as HashScheme,
        hashSeed: c.pythonhashseed,
        blockSize: c.block_size,
      });
      const chain = hasher.hash(tokensOf(c), { lora: c.lora_key, cacheSalt: c.cache_salt });
      expect(chain.length).toBe(c.num_full_blocks);
      expect(toDecimalStrings(chain)).toEqual(c.blocks.map((b) => b.event_value_dec));
      if (c.none_hash.event_value_dec) expect(hasher.noneHash.toString()).toBe(c.none_hash.event_value_dec);
    });
  }

  for (const x of vectors.external_cross_checks) {
    it(`matches real vLLM capture: ${x.name}`, () => {
      const hasher = new BlockHasher({
        scheme: x.scheme as HashScheme,
        hashSeed: x.pythonhashseed,
        blockSize: x.block_size,
      });
      expect(toDecimalStrings(hasher.hash(x.token_ids, { lora: x.lora_key }))).toEqual(
        x.expected_event_values_dec,
      );
    });
  }
});

describe("canonical CBOR input", () => {
  // Re-encode block inputs independently of BlockHasher and compare with the vectors' exact bytes.
  for (const c of vectors.cases.filter((x) => x.scheme === "sha256_cbor_64bit")) {
    it(`encodes block inputs byte-identically for ${c.name}`, () => {
      const tokens = tokensOf(c);
      let parent = BigInt(c.none_hash.hash_dec ?? c.none_hash.event_value_dec!);
      let compared = 0;
      for (const b of c.blocks) {
        if (!b.cbor_input_hex) {
          parent = BigInt(b.event_value_dec);
          continue;
        }
        const w = new CborWriter(8);
        w.arrayHead(3);
        const p = new Uint8Array(8);
        new DataView(p.buffer).setBigUint64(0, parent);
        w.uint64BE(p, 0);
        w.arrayHead(c.block_size);
        for (const t of tokens.slice(b.block_index * c.block_size, (b.block_index + 1) * c.block_size))
          w.uint(t);
        const extra: (number | string)[] = [];
        if (c.lora_key !== null) extra.push(c.lora_key);
        if (c.cache_salt && b.block_index === 0) extra.push(c.cache_salt);
        if (extra.length === 0) w.null();
        else {
          w.arrayHead(extra.length);
          for (const e of extra) typeof e === "number" ? w.uint(e) : w.text(e);
        }
        expect(Buffer.from(w.view()).toString("hex")).toBe(b.cbor_input_hex);
        parent = BigInt(b.event_value_dec);
        compared++;
      }
      expect(compared).toBeGreaterThan(0);
    });
  }

  it("encodes small parents in shortest form", () => {
    const w = new CborWriter(2);
    w.uint64BE(new Uint8Array([0, 0, 0, 0, 0, 0, 0, 23]), 0);
    w.uint64BE(new Uint8Array([0, 0, 0, 0, 0, 0, 1, 0]), 0);
    w.uint64BE(new Uint8Array([0, 0, 0, 1, 0, 0, 0, 0]), 0);
    expect(Buffer.from(w.view()).toString("hex")).toBe("17" + "190100" + "1b0000000100000000");
  });
});

describe("BlockHasher", () => {
  const hasher = new BlockHasher({ scheme: "sha256_cbor_64bit", hashSeed: "42", blockSize: 4 });

  it("hashes only full blocks", () => {
    expect(hasher.hash([1, 2, 3]).length).toBe(0);
    expect(hasher.hash([1, 2, 3, 4, 5, 6, 7]).length).toBe(1);
  });

  it("chains: a shared prefix gives identical leading hashes, a change diverges from there on", () => {
    const a = hasher.hash([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const b = hasher.hash([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13]);
    const c = hasher.hash([1, 2, 3, 4, 5, 0, 7, 8, 9, 10, 11, 12]);
    expect(b[0]).toBe(a[0]);
    expect(b[1]).toBe(a[1]);
    expect(b[2]).not.toBe(a[2]);
    expect(c[1]).not.toBe(a[1]);
    expect(c[2]).not.toBe(a[2]);
  });

  it("keeps values above 2^53 exact and exposes them as little-endian word pairs", () => {
    const chain = new BlockHasher({ scheme: "sha256_cbor_64bit", hashSeed: "42", blockSize: 64 }).hash(
      Array.from({ length: 64 }, (_, i) => i),
    );
    expect(chain[0]).toBe(334609804919786575n);
    const words = new Uint32Array(chain.buffer);
    expect((BigInt(words[1]!) << 32n) | BigInt(words[0]!)).toBe(334609804919786575n);
  });

  it("handles token ids of every CBOR width", () => {
    const h = new BlockHasher({ scheme: "sha256_cbor", hashSeed: "0", blockSize: 4 });
    const x = h.hash([0, 23, 24, 255, 256, 65535, 65536, 151_643]);
    expect(x.length).toBe(2);
    expect(new Set(x).size).toBe(2);
  });

  it("rejects a bad block size", () => {
    expect(() => new BlockHasher({ scheme: "sha256_cbor", hashSeed: "0", blockSize: 0 })).toThrow(
      /blockSize/,
    );
  });
});

describe("BlockHasher memo", () => {
  const plain = new BlockHasher({ scheme: "sha256_cbor_64bit", hashSeed: "42", blockSize: 16 });
  const randomTokens = (n: number, seed: number) => {
    let x = seed;
    return Array.from({ length: n }, () => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return x % 152_000;
    });
  };

  for (const scheme of ["sha256_cbor_64bit", "sha256_cbor"] as const) {
    it(`gives exactly the unmemoised chain and reuses shared prefixes (${scheme})`, () => {
      const ref = new BlockHasher({ scheme, hashSeed: "42", blockSize: 16 });
      const memo = new BlockHasher({ scheme, hashSeed: "42", blockSize: 16, memoBlocks: 1000 });
      const system = randomTokens(16 * 20, 1);
      for (let r = 0; r < 30; r++) {
        const tokens = [...system, ...randomTokens(16 * 3 + (r % 16), 100 + r)];
        expect(toDecimalStrings(memo.hash(tokens))).toEqual(toDecimalStrings(ref.hash(tokens)));
      }
      expect(memo.memoStats().hits).toBeGreaterThanOrEqual(29 * 20);
    });
  }

  it("stays exact when the memo is far too small and slots are overwritten mid-chain", () => {
    const tiny = new BlockHasher({
      scheme: "sha256_cbor_64bit",
      hashSeed: "42",
      blockSize: 16,
      memoBlocks: 3,
    });
    for (let r = 0; r < 20; r++) {
      const tokens = randomTokens(16 * 10, r % 4);
      expect(toDecimalStrings(tiny.hash(tokens))).toEqual(toDecimalStrings(plain.hash(tokens)));
    }
  });

  it("never serves a memoised block to a request with extras", () => {
    const memo = new BlockHasher({
      scheme: "sha256_cbor_64bit",
      hashSeed: "42",
      blockSize: 16,
      memoBlocks: 100,
    });
    const tokens = randomTokens(64, 7);
    memo.hash(tokens);
    const salted = memo.hash(tokens, { cacheSalt: "tenant-a" });
    expect(toDecimalStrings(salted)).toEqual(toDecimalStrings(plain.hash(tokens, { cacheSalt: "tenant-a" })));
    expect(salted[0]).not.toBe(plain.hash(tokens)[0]);
  });
});

describe("BlockHasher.hashSliced", () => {
  const tokens = (n: number, salt: number) =>
    Uint32Array.from({ length: n }, (_, i) => (i * 7919 + salt) % 151_936);
  const schemes: HashScheme[] = ["sha256_cbor_64bit", "sha256_cbor"];
  for (const scheme of schemes) {
    it(`spreads a cold 60k-token chain over loop turns with hash's values, interleaved calls exact (${scheme})`, async () => {
      const options = { scheme, hashSeed: "42", blockSize: 64 };
      const plain = new BlockHasher(options);
      const memo = new BlockHasher({ ...options, memoBlocks: 65_536 });
      const [a, b] = [tokens(60_000, 1), tokens(60_000, 2)];
      // b shares a's first 200 blocks: the memo serves them, the prefix memo remembers both.
      b.set(a.subarray(0, 200 * 64));
      const [got, turns] = await turnsWhile(
        Promise.all([memo.hashSliced(a), memo.hashSliced(b, { cacheSalt: "s" }), memo.hashSliced(a)]),
      );
      expect(got[0]).toEqual(plain.hash(a));
      expect(got[1]).toEqual(plain.hash(b, { cacheSalt: "s" }));
      expect(got[2]).toEqual(plain.hash(a));
      // ~1,900 cold blocks, a few ms of sha256 at the least, hashed ≤ 1 ms a turn (at once: no turn at all).
      expect(turns).toBeGreaterThanOrEqual(2);
      // A short chain is hashed at once.
      expect(await memo.hashSliced(a.subarray(0, 128 * 64))).toEqual(plain.hash(a.subarray(0, 128 * 64)));
    });
  }
});
