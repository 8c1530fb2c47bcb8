// `kvpick hash` end to end: the compiled CLI on golden requests (file and stdin) and on bad input.
import { spawn } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadVector, repoRoot } from "../../test/support/golden.js";

interface GoldenCase {
  name: string;
  request: Record<string, unknown>;
  token_ids: number[];
  block_hashes: Record<string, string[]>;
}

const MAIN = join(repoRoot, "dist", "src", "main.js");
const golden = loadVector<{ cases: GoldenCase[] }>("qwen3-chat-golden.json");

function run(args: string[], stdin = ""): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, "hash", ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

describe("kvpick hash", { timeout: 60_000 }, () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "kvpick-hash-"));
  });

  for (const c of golden.cases) {
    it(`prints vLLM's block hashes for ${c.name}`, async () => {
      const file = join(dir, `${c.name}.json`);
      await writeFile(file, JSON.stringify(c.request));
      const r = await run(["--hash-seed", "42", "--token-ids", file]);
      expect(r.code).toBe(0);
      const out = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(out).toEqual({
        tokens: c.token_ids.length,
        blockSize: 64,
        blockHashes: c.block_hashes.sha256_cbor_64bit,
        tokenIds: c.token_ids,
      });
    });
  }

  it("reads stdin, defaults the seed with a notice, and supports --hash-algo sha256_cbor", async () => {
    const c = golden.cases[0]!;
    const r = await run(["--hash-algo", "sha256_cbor", "-"], JSON.stringify(c.request));
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/--hash-seed not given, using "42"/);
    expect(JSON.parse(r.stdout).blockHashes).toEqual(c.block_hashes.sha256_cbor);
  });

  it("prints xxhash_cbor hashes with --algo xxhash_cbor (golden vector, token ids as the prompt)", async () => {
    const v = loadVector<{ cases: { name: string; blocks: { event_value_dec: string }[] }[] }>(
      "vllm-block-hashes.json",
    ).cases.find((x) => x.name === "xxhash_cbor/seed42/bs64/tokens0-199")!;
    const prompt = Array.from({ length: 200 }, (_, i) => i);
    const r = await run(["--algo", "xxhash_cbor", "--hash-seed", "42"], JSON.stringify({ prompt }));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).blockHashes).toEqual(v.blocks.map((b) => b.event_value_dec));
  });

  it("puts cache_salt into block 0's hash only", async () => {
    const c = golden.cases.find((x) => x.token_ids.length >= 128)!;
    const r = await run(["--hash-seed", "42"], JSON.stringify({ ...c.request, cache_salt: "tenant-a" }));
    const hashes = JSON.parse(r.stdout).blockHashes as string[];
    expect(hashes[0]).not.toBe(c.block_hashes.sha256_cbor_64bit![0]);
    expect(hashes[1]).not.toBe(c.block_hashes.sha256_cbor_64bit![1]); // chained from a different parent
  });

  const bad: [string, string[], string][] = [
    ["not JSON", [], "{nope"],
    ["no messages or prompt", [], '{"model":"x"}'],
    ["empty messages", [], '{"messages":[]}'],
    ["unknown model dir", ["--model-dir", "/nonexistent/kvpick"], '{"prompt":"x"}'],
    ["bad block size", ["--block-size", "0"], '{"prompt":"x"}'],
    ["bad algo", ["--hash-algo", "md5"], '{"prompt":"x"}'],
    ["pickle algo", ["--algo", "sha256"], '{"prompt":"x"}'],
    ["bad endpoint", ["--endpoint", "/v1/embeddings"], '{"prompt":"x"}'],
    ["unknown flag", ["--frobnicate"], '{"prompt":"x"}'],
  ];
  for (const [name, args, input] of bad) {
    it(`exits 2 with one stderr line on ${name}`, async () => {
      const r = await run(["--hash-seed", "42", ...args], input);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(/^kvpick hash: /);
    });
  }

  it("prints usage with --help", async () => {
    const r = await run(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/usage: kvpick hash/);
  });
});
