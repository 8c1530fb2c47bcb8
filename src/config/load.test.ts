import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { configProblems } from "../../test/support/config-problems.js";
import { loadConfig, parseConfig } from "./load.js";

const problems = configProblems;

describe("config", () => {
  it("fills every default", () => {
    const c = parseConfig({});
    expect(c.tokenizer.blockSize).toBeNull(); // learnt from the pods
    expect(c.tokenizer.hashAlgo).toBe("sha256_cbor_64bit");
    expect(c.tokenizer.hashSeed).toBeNull();
    expect(c.kvEvents.endpoint).toBe("tcp://*:5557");
    expect(c.index.maxEntries).toBeGreaterThanOrEqual(10_000_000);
  });

  it("names the bad field, what was expected and what was given", () => {
    expect(problems(() => parseConfig({ tokenizer: { blockSize: "sixty" } }))).toEqual([
      'tokenizer.blockSize: expected integer 1..1024, got "sixty"',
    ]);
    expect(problems(() => parseConfig({ tokenizer: { blockSize: 2048 } }))).toEqual([
      "tokenizer.blockSize: expected integer 1..1024, got 2048",
    ]);
  });

  it("rejects unknown fields with their path", () => {
    expect(problems(() => parseConfig({ tokenizer: { blokSize: 64 } }))).toEqual([
      "tokenizer.blokSize: unknown field",
    ]);
  });

  it("lists every problem at once", () => {
    const p = problems(() => parseConfig({ logLevel: "loud", tokenizer: { hashAlgo: "md5", blockSize: 0 } }));
    expect(p).toHaveLength(3);
    expect(p.join("\n")).toMatch(/^logLevel: expected one of/m);
    expect(p.join("\n")).toMatch(
      /^tokenizer.hashAlgo: expected one of sha256_cbor_64bit, sha256_cbor, xxhash_cbor, sha256, xxhash, got "md5"/m,
    );
  });

  it("reads YAML files and lets overrides win", () => {
    const dir = mkdtempSync(join(tmpdir(), "kvpick-config-"));
    const file = join(dir, "c.yaml");
    writeFileSync(file, "tokenizer:\n  blockSize: 16\n  hashSeed: '42'\n");
    const c = loadConfig({ file, overrides: { tokenizer: { blockSize: 32 } } });
    expect(c.tokenizer.blockSize).toBe(32);
    expect(c.tokenizer.hashSeed).toBe("42");
  });

  it("reports unreadable files and bad syntax as config errors", () => {
    expect(problems(() => loadConfig({ file: "/nonexistent/kvpick.yaml" }))[0]).toMatch(
      /config file \/nonexistent/,
    );
    expect(problems(() => loadConfig({ text: "tokenizer: [1, 2" }))[0]).toMatch(
      /--config-text: not valid YAML/,
    );
  });
});
