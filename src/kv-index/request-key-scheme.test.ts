import { describe, expect, it } from "vitest";
import { createLogger } from "../observability/logger.js";
import { LearntBlockSize } from "./learnt-block-size.js";
import { RequestHasher, requestKeyScheme } from "./request-key-scheme.js";
import { TOKEN_CHAIN_SCHEME } from "./token-chain.js";

describe("requestKeyScheme", () => {
  const cases = [
    { keys: "engine", hashSeed: "42", hashAlgo: "sha256_cbor", scheme: "sha256_cbor", comparable: true },
    { keys: "auto", hashSeed: "42", hashAlgo: "xxhash_cbor", scheme: "xxhash_cbor", comparable: true },
    {
      keys: undefined,
      hashSeed: "42",
      hashAlgo: "sha256_cbor_64bit",
      scheme: "sha256_cbor_64bit",
      comparable: true,
    },
    // tokens never compares engine hashes: kvpick's own cheap chain even when a seed is configured.
    {
      keys: "tokens",
      hashSeed: "42",
      hashAlgo: "sha256_cbor",
      scheme: TOKEN_CHAIN_SCHEME,
      comparable: false,
    },
    { keys: "auto", hashSeed: null, hashAlgo: "sha256_cbor", scheme: TOKEN_CHAIN_SCHEME, comparable: false },
    { keys: "auto", hashSeed: "42", hashAlgo: "sha256", scheme: TOKEN_CHAIN_SCHEME, comparable: false },
  ] as const;
  for (const c of cases) {
    it(`keys ${c.keys}, seed ${c.hashSeed}, ${c.hashAlgo} → ${c.scheme}`, () => {
      const ks = requestKeyScheme(c);
      expect(ks.scheme).toBe(c.scheme);
      expect(ks.comparable).toBe(c.comparable);
      if (!c.comparable) expect(ks.hashSeed).toBe("kvpick-token-keys");
    });
  }

  it("hashes requests with kvpick's chain when token keys are in use, memo or not", () => {
    const ks = requestKeyScheme({ keys: "tokens", hashSeed: "42", hashAlgo: "sha256_cbor" });
    const sizes = new LearntBlockSize(4, createLogger({ level: "silent" }));
    const toks = Array.from({ length: 12 }, (_, i) => i);
    const a = new RequestHasher(ks, sizes, 0);
    const b = new RequestHasher(ks, sizes, 1024);
    expect(a.current()!.tokenChain).not.toBeNull();
    expect([...b.hash(toks)]).toEqual([...a.hash(toks)]);
    expect([...b.hash(toks)]).toEqual([
      ...a.current()!.tokenChain!.hash(toks, new Uint8Array([0xf6]), new Uint8Array([0xf6])),
    ]);
  });
});
