// `kvpick hash` reads a body as vLLM's Python does: a one-tool request with `"default": 1.0` and one with
// `"default": 1` get different block hashes, each equal to the hashes of the prompt Python renders
// (test/fixtures/python-json/golden.json, from oracle.py there).
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { repoRoot } from "../../test/support/golden.js";
import { configSchema } from "../config/schema.js";
import { BlockHasher, toDecimalStrings } from "../kv-index/block-hash.js";
import { createLogger } from "../observability/logger.js";
import { TokenizationService } from "../tokenization/tokenization-service.js";

const MAIN = join(repoRoot, "dist", "src", "main.js");
const golden = JSON.parse(
  readFileSync(join(repoRoot, "test", "fixtures", "python-json", "golden.json"), "utf8"),
) as { tool_requests: { name: string; body: string; rendered_prompt: string }[] };

function hash(stdin: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, "hash", "--hash-seed", "42", "-"], { stdio: "pipe" });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

describe("kvpick hash with Python-faithful values", { timeout: 60_000 }, () => {
  const service = new TokenizationService({
    config: { ...configSchema.parse({}).tokenizer, workerThreads: 0 },
    logger: createLogger({ level: "silent" }),
  });
  afterAll(() => service.stop());
  const hasher = new BlockHasher({ scheme: "sha256_cbor_64bit", hashSeed: "42", blockSize: 64 });

  it("gives `default: 1.0` and `default: 1` the block hashes of their Python-rendered prompts", async () => {
    const printed: string[][] = [];
    for (const c of golden.tool_requests) {
      const r = await hash(c.body);
      expect(r.code, r.stderr).toBe(0);
      const ids = await service.tokenize("Qwen3-32B", "/v1/completions", { prompt: c.rendered_prompt });
      const blockHashes = (JSON.parse(r.stdout) as { blockHashes: string[] }).blockHashes;
      expect(blockHashes, c.name).toEqual(toDecimalStrings(hasher.hash(ids.tokenIds)));
      printed.push(blockHashes);
    }
    expect(printed).toHaveLength(2);
    expect(printed[0]!.at(-1)).not.toBe(printed[1]!.at(-1));
  });

  it("refuses a body nested deeper than the request limit, and a media request, with one clear line", async () => {
    const deep = await hash(`{"prompt": "x", "extra": ${"[".repeat(100_000)}${"]".repeat(100_000)}}`);
    expect(deep.code).toBe(2);
    expect(deep.stderr).toMatch(/^kvpick hash: request body is not JSON: nested deeper than 4096 levels\n$/);
    const media = await hash(
      JSON.stringify({
        model: "Qwen3-32B",
        messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "https://x/a.png" } }] }],
      }),
    );
    expect(media.code).toBe(2);
    expect(media.stderr).toMatch(/carries media; kvpick gives such requests no prefix credit/);
  });
});
