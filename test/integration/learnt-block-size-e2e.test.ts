// A real `kvpick serve` child started without --block-size (and without --hash-seed) in front of simulated
// vLLM pods running 16-token blocks: it learns the size from the pods (their vllm:cache_config_info page or
// their first BlockStored), logs it once, hashes requests with it, and routes every request to the pod
// holding its whole prefix. Real ZeroMQ, real HTTP pods, real ext_proc client.
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { createLogger } from "../../src/observability/logger.js";
import { LiveClock } from "../../src/sim/clock.js";
import { DEFAULT_ENGINE_CONFIG } from "../../src/sim/engine-config.js";
import { type SimCluster, startSimCluster } from "../../src/sim/sim-cluster.js";
import { TokenizationService } from "../../src/tokenization/tokenization-service.js";
import { EnvoyClient } from "../support/envoy-client.js";
import { freePort } from "../support/free-port.js";
import { type ServeChild, spawnServe } from "../support/serve-child.js";
import { until } from "../support/until.js";

const MODEL = "Qwen3-32B";
const BLOCK = 16;
/** Three distinct system prompts of ~40 blocks of 16 tokens each. */
const PREFIXES = ["billing", "shipping", "warranty"].map(
  (topic) =>
    `You are the ${topic} assistant. ` +
    Array.from(
      { length: 40 },
      (_, i) => `${topic} rule ${i}: case ${i * 13} needs form ${topic}-${i + 7}.`,
    ).join(" "),
);
const chat = (system: string, question: string) => ({
  model: MODEL,
  max_tokens: 2,
  messages: [
    { role: "system", content: system },
    { role: "user", content: question },
  ],
});

describe("kvpick serve without --block-size, pods on 16-token blocks", () => {
  let cluster: SimCluster;
  let tokenizer: TokenizationService;
  let serve: ServeChild;
  let client: EnvoyClient;
  const lines: Record<string, unknown>[] = [];
  const handled = () => lines.filter((l) => l.msg === "Request handled");

  beforeAll(async () => {
    const logger = createLogger({ level: "silent" });
    tokenizer = new TokenizationService({ config: parseConfig({}).tokenizer, logger });
    const kvPort = await freePort();
    cluster = await startSimCluster({
      pods: 3,
      basePort: 0,
      ipMode: "single",
      model: MODEL,
      engine: { ...DEFAULT_ENGINE_CONFIG, blockSize: BLOCK, numGpuBlocks: 2000 },
      hashAlgo: "sha256_cbor",
      hashSeed: "31337",
      clock: new LiveClock(200),
      tokenizer,
      logger,
      kvEvents: { mode: "connect", endpoint: `tcp://127.0.0.1:${kvPort}` },
      eventLayout: "v0.10.2",
    });
    serve = await spawnServe(
      [
        `--kv-events-endpoint=tcp://127.0.0.1:${kvPort}`,
        `--endpoints=${cluster.pods.map((p) => p.address).join(",")}`,
        "--hash-algo=sha256_cbor",
        `--config-text={"scheduling":{"speculativeTtlMs":0}}`,
      ],
      { hashSeed: null, stdio: ["ignore", "pipe", "inherit"] },
    );
    createInterface({ input: serve.proc.stdout! }).on("line", (line) => {
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log line
      }
    });
    client = new EnvoyClient(`127.0.0.1:${serve.grpcPort}`);
    await client.waitForReady(90_000);
  }, 120_000);

  afterAll(async () => {
    client?.close();
    await serve?.stop();
    await cluster?.close();
    await tokenizer?.stop();
  });

  const route = async (body: unknown) => {
    const n = handled().length;
    const r = await client.process({ body: JSON.stringify(body), response: { status: 200 } });
    await until(() => handled().length > n, "the request's log line", 5000);
    return { destination: r.destination, log: handled()[n]! };
  };
  const serveOn = async (pod: number, body: unknown) => {
    const res = await fetch(`http://${cluster.pods[pod]!.address}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(200);
    await res.text();
  };

  it("learns 16 from the pods, once, and routes every request to the pod holding its prefix", async () => {
    for (let i = 0; i < 3; i++) await serveOn(i, chat(PREFIXES[i]!, "warm up"));
    await until(
      async () => (await route(chat(PREFIXES[2]!, "probe"))).destination === cluster.pods[2]!.address,
      "pod 2's blocks indexed",
      30_000,
      50,
    );
    const learnt = lines.filter((l) => String(l.msg).startsWith("block size learnt:"));
    expect(learnt).toHaveLength(1);
    expect(learnt[0]!.blockSize).toBe(BLOCK);
    expect(["vllm:cache_config_info", "BlockStored"]).toContain(learnt[0]!.source);
    for (let q = 0; q < 3; q++) {
      for (let i = 0; i < 3; i++) {
        const r = await route(chat(PREFIXES[i]!, `question ${q}: where is order ${q * 100 + i}?`));
        expect(r.destination).toBe(cluster.pods[i]!.address);
        const total = r.log.totalBlocks as number;
        // Blocks of 16 tokens: a 64-token hasher would see a quarter of them.
        expect(total * BLOCK).toBeLessThanOrEqual(r.log.promptTokens as number);
        expect(total * BLOCK).toBeGreaterThan((r.log.promptTokens as number) - BLOCK);
        // The whole system prompt matched (~40 blocks), not a lucky pick.
        expect(r.log.prefixMatchBlocks as number).toBeGreaterThanOrEqual(30);
      }
    }
  }, 120_000);
});
