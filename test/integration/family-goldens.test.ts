// Every case of test/fixtures/families/*.json — what vLLM's chat preprocessing, Python Jinja2, the native HF
// tokenizers and Python cbor2/hashlib compute (generate.py) — through both of kvpick's paths:
// 1. `kvpick hash` as a spawned CLI: the exact token ids and block hashes;
// 2. the request path (createApp on real sockets, an Envoy-behaving ext_proc client, KV events on ZeroMQ):
//    a pod publishes exactly the golden hashes, and kvpick must route the request there with every one of
//    its blocks matched (a single differing token or hash leaves blocks unmatched).
// Fixed goldens, never skipped; regenerate them with the command in test/fixtures/families/README.md.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/app.js";
import { parseConfig } from "../../src/config/load.js";
import { HASH_ALGOS, type HashAlgo } from "../../src/config/schema.js";
import { createLogger } from "../../src/observability/logger.js";
import { EnvoyClient } from "../support/envoy-client.js";
import { FakeVllmPod } from "../support/fake-vllm-pod.js";
import { until } from "../support/until.js";
import { repoRoot } from "../support/golden.js";
import { KvEventPublisher } from "../support/kv-event-publisher.js";

interface GoldenCase {
  name: string;
  covers: string;
  endpoint: "/v1/chat/completions" | "/v1/completions";
  /** The request body exactly as sent (numbers such as 1.0 and 1e20 must reach kvpick unparsed). */
  body: string;
  /** Set when vLLM refuses the request (the template raised): kvpick must answer 4xx too. */
  error?: string;
  token_ids?: number[];
  block_hashes?: Record<string, string[]>;
}

interface FamilyGolden {
  family: string;
  model: string;
  block_size: number;
  hash_seed: string;
  cases: GoldenCase[];
}

const FAMILIES = ["qwen3", "llama3_1", "deepseek_v3", "gemma3"] as const;
const goldens: FamilyGolden[] = FAMILIES.map(
  (f) =>
    JSON.parse(
      readFileSync(join(repoRoot, "test", "fixtures", "families", `${f}.json`), "utf8"),
    ) as FamilyGolden,
);
const REFERENCE: HashAlgo = "sha256_cbor_64bit";
/** Every algo kvpick implements that the oracle wrote (xxhash_cbor joins when kvpick has it). */
const ALGOS = HASH_ALGOS.filter((a) => goldens[0]!.cases.some((c) => c.block_hashes?.[a] !== undefined));

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runHash(family: string, golden: FamilyGolden, body: string, algo: HashAlgo): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(
      process.execPath,
      [
        join(repoRoot, "dist", "src", "main.js"),
        "hash",
        `--model-dir=bundled:${family}`,
        `--block-size=${golden.block_size}`,
        `--hash-seed=${golden.hash_seed}`,
        `--hash-algo=${algo}`,
        "--token-ids",
        "-",
      ],
      { stdio: ["pipe", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
    proc.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    proc.on("error", reject);
    proc.on("close", (code) => resolve({ code, stdout, stderr }));
    proc.stdin.end(body, "utf8");
  });
}

/** Runs `jobs` with at most `limit` at a time (each spawn loads a tokenizer: Gemma's is 33 MB). */
async function pooled<T>(jobs: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < jobs.length) {
        const i = next++;
        out[i] = await jobs[i]!();
      }
    }),
  );
  return out;
}

const blockCount = (c: GoldenCase) => c.block_hashes![REFERENCE]!.length;

describe("model-family goldens through `kvpick hash`", () => {
  // Every case with the reference algo; each other algo on each family's longest case (a spawn costs a
  // tokenizer load, and the hash only depends on the token ids the reference run already proves).
  const runs: { family: string; golden: FamilyGolden; c: GoldenCase; algo: HashAlgo }[] = [];
  for (const [i, golden] of goldens.entries()) {
    const family = FAMILIES[i]!;
    for (const c of golden.cases) runs.push({ family, golden, c, algo: REFERENCE });
    const longest = golden.cases
      .filter((c) => c.error === undefined)
      .reduce((a, b) => (blockCount(b) > blockCount(a) ? b : a));
    for (const algo of ALGOS) if (algo !== REFERENCE) runs.push({ family, golden, c: longest, algo });
  }
  let results: CliResult[] = [];
  beforeAll(async () => {
    results = await pooled(
      runs.map((r) => () => runHash(r.family, r.golden, r.c.body, r.algo)),
      3,
    );
  }, 900_000);

  it("covers every family with chat, tools, unicode and completions cases", () => {
    expect(ALGOS).toContain("sha256_cbor_64bit");
    expect(ALGOS).toContain("sha256_cbor");
    for (const g of goldens) {
      const names = g.cases.map((c) => c.name);
      for (const want of [
        "multi-turn",
        "content-parts",
        "unicode",
        "tools",
        "tools-request-template",
        "completion",
      ])
        expect(names, g.family).toContain(want);
    }
  });

  for (const [i, r] of runs.entries()) {
    it(`${r.family} / ${r.c.name} (${r.algo})`, () => {
      const res = results[i]!;
      if (r.c.error !== undefined) {
        expect(res.code, res.stderr).toBe(2);
        expect(res.stderr).toContain(r.c.error);
        return;
      }
      expect(res.code, res.stderr).toBe(0);
      const out = JSON.parse(res.stdout) as { tokens: number; tokenIds: number[]; blockHashes: string[] };
      expect(out.tokenIds).toEqual(r.c.token_ids);
      expect(out.blockHashes).toEqual(r.c.block_hashes![r.algo]);
    });
  }
});

for (const algo of ALGOS) {
  describe(`model-family goldens through the request path (${algo})`, () => {
    const pods: FakeVllmPod[] = [];
    const publishers: KvEventPublisher[] = [];
    const logs: Record<string, unknown>[] = [];
    let app: App;
    let client: EnvoyClient;

    beforeAll(async () => {
      for (const ip of ["127.0.0.41", "127.0.0.42"]) {
        const pod = await new FakeVllmPod(ip).start();
        pod.blockSize = goldens[0]!.block_size;
        pods.push(pod);
      }
      const logger = createLogger({
        level: "info",
        destination: { write: (s: string) => void logs.push(JSON.parse(s)) },
      });
      const config = parseConfig({
        tokenizer: {
          hashSeed: goldens[0]!.hash_seed,
          hashAlgo: algo,
          blockSize: goldens[0]!.block_size,
          models: Object.fromEntries(
            goldens.map((g, i) => [g.model, { tokenizerDir: `bundled:${FAMILIES[i]}` }]),
          ),
        },
        kvEvents: { endpoint: "tcp://127.0.0.1:*" },
        server: { grpcPort: 0, grpcHealthPort: 0, metricsPort: 0, secureServing: false },
        pool: { endpoints: pods.map((p) => p.address) },
      });
      app = createApp({ config, logger, host: "127.0.0.1" });
      const ports = await app.start();
      client = new EnvoyClient(`127.0.0.1:${ports.grpcPort}`, { tls: false });
      await client.waitForReady();
      await until(
        () => app.endpoints.candidates().every((e) => e.metricsState === "fresh"),
        "every pod's first scrape",
      );
      for (const pod of pods) {
        const pub = new KvEventPublisher({ topic: `kv@${pod.ip}@goldens` });
        pub.connect(ports.kvEventsEndpoint!);
        await pub.publishUntil(() => app.kvEvents.podStates().some((s) => s.podId === pod.ip));
        publishers.push(pub);
      }
    }, 300_000);

    afterAll(async () => {
      for (const pub of publishers) pub.close();
      client?.close();
      await app?.stop();
      await Promise.all(pods.map((p) => p.close()));
    });

    let n = 0;
    for (const [f, golden] of goldens.entries()) {
      for (const c of golden.cases) {
        const requestId = `${FAMILIES[f]}/${c.name}/${algo}`;
        it(`${FAMILIES[f]} / ${c.name}`, async () => {
          if (c.error !== undefined) {
            const r = await client.process({ path: c.endpoint, body: Buffer.from(c.body, "utf8") });
            expect(r.violations).toEqual([]);
            expect(r.immediate?.status).toBe(400);
            expect(r.immediate?.body.toString("utf8")).toContain(c.error);
            return;
          }
          const owner = n++ % pods.length;
          const pod = pods[owner]!;
          const pub = publishers[owner]!;
          const hashes = c.block_hashes![algo]!.map(BigInt);
          const bs = golden.block_size;
          await pub.publish([
            {
              type: "BlockStored",
              hashes,
              parent: null,
              tokenIds: c.token_ids!.slice(0, hashes.length * bs),
              blockSize: bs,
            },
          ]);
          await until(() => app.index.stats().entries >= hashes.length, "golden blocks indexed");
          try {
            const r = await client.process({
              path: c.endpoint,
              body: Buffer.from(c.body, "utf8"),
              headers: { "x-request-id": requestId },
            });
            expect(r.violations).toEqual([]);
            expect(r.immediate).toBeNull();
            const line = logs.find((l) => l.msg === "Request handled" && l["x-request-id"] === requestId);
            expect(line).toMatchObject({
              promptTokens: c.token_ids!.length,
              totalBlocks: hashes.length,
              prefixMatchBlocks: hashes.length,
              Address: pod.address,
            });
            expect(r.destination).toBe(pod.address);
          } finally {
            await pub.publish([{ type: "AllBlocksCleared" }]);
            await until(() => app.index.stats().entries === 0, "pod cleared");
          }
          const state = app.kvEvents.podStates().find((s) => s.podId === pod.ip)!;
          expect(state.hashMismatches).toBe(0);
        }, 60_000);
      }
    }
  });
}
