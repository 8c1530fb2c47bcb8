// Pods publishing under a seed and algo kvpick was never told: a real `kvpick serve` child started without
// --hash-seed indexes them by token keys (kvEvents.keys auto) and routes every request to the pod holding its
// whole prefix; a BlockRemoved (the simulated engine evicting) takes the block away through the map.
// Real ZeroMQ (simulated vLLM pods → kvpick's bound SUB), real HTTP pods, real ext_proc client.
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HashAlgo } from "../../src/config/schema.js";
import { parseConfig } from "../../src/config/load.js";
import { createLogger } from "../../src/observability/logger.js";
import { LiveClock } from "../../src/sim/clock.js";
import { DEFAULT_ENGINE_CONFIG } from "../../src/sim/engine-config.js";
import type { EventLayout } from "../../src/sim/kv-event-encoder.js";
import { type SimCluster, startSimCluster } from "../../src/sim/sim-cluster.js";
import { TokenizationService } from "../../src/tokenization/tokenization-service.js";
import { EnvoyClient } from "../support/envoy-client.js";
import { freePort } from "../support/free-port.js";
import { type ServeChild, spawnServe } from "../support/serve-child.js";
import { until } from "../support/until.js";

const MODEL = "Qwen3-32B";
/** Three distinct long system prompts (~10 blocks of 64 tokens each). */
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

const variants: { algo: HashAlgo; seed: string; layout: EventLayout }[] = [
  { algo: "sha256_cbor", seed: "31337", layout: "v0.10.2" },
  { algo: "xxhash_cbor", seed: "9001", layout: "map" },
];

for (const v of variants) {
  describe(`kvpick serve without --hash-seed, pods on ${v.algo} seed ${v.seed} (${v.layout} layout)`, () => {
    let cluster: SimCluster;
    let tokenizer: TokenizationService;
    let serve: ServeChild;
    let client: EnvoyClient;
    const handled: Record<string, unknown>[] = [];

    beforeAll(async () => {
      const logger = createLogger({ level: "silent" });
      tokenizer = new TokenizationService({
        config: parseConfig({}).tokenizer,
        logger,
      });
      const kvPort = await freePort();
      cluster = await startSimCluster({
        pods: 3,
        basePort: 0,
        ipMode: "single",
        model: MODEL,
        // 24 blocks per pod: a second long prompt on the same pod evicts the first one's blocks.
        engine: { ...DEFAULT_ENGINE_CONFIG, numGpuBlocks: 24 },
        hashAlgo: v.algo,
        hashSeed: v.seed,
        clock: new LiveClock(200),
        tokenizer,
        logger,
        kvEvents: { mode: "connect", endpoint: `tcp://127.0.0.1:${kvPort}` },
        eventLayout: v.layout,
      });
      serve = await spawnServe(
        [
          `--kv-events-endpoint=tcp://127.0.0.1:${kvPort}`,
          `--endpoints=${cluster.pods.map((p) => p.address).join(",")}`,
          `--hash-algo=${v.algo}`,
          // Only the pods' events may place a prefix: no speculative entries for the probes routed here.
          `--config-text={"scheduling":{"speculativeTtlMs":0}}`,
        ],
        { hashSeed: null, stdio: ["ignore", "pipe", "inherit"] },
      );
      const lines = createInterface({ input: serve.proc.stdout! });
      lines.on("line", (line) => {
        try {
          const l = JSON.parse(line) as Record<string, unknown>;
          if (l.msg === "Request handled") handled.push(l);
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

    /** Asks kvpick where to send `body` (the request goes no further); its "Request handled" log line too. */
    const route = async (body: unknown) => {
      const n = handled.length;
      const r = await client.process({
        body: JSON.stringify(body),
        response: { status: 200 },
      });
      await until(() => handled.length > n, "the request's log line", 5000);
      return { destination: r.destination, log: handled[n] };
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

    it("routes every request to the pod holding its whole prefix", async () => {
      // Pod i serves prefix i once: its BlockStored events (under the unknown seed) reach kvpick.
      for (let i = 0; i < 3; i++) await serveOn(i, chat(PREFIXES[i]!, "warm up"));
      await until(
        async () => (await route(chat(PREFIXES[2]!, "probe"))).destination === cluster.pods[2]!.address,
        "pod 2's blocks indexed",
        30_000,
        50,
      );
      for (let q = 0; q < 3; q++) {
        for (let i = 0; i < 3; i++) {
          const r = await route(chat(PREFIXES[i]!, `question ${q}: where is order ${q * 100 + i}?`));
          expect(r.destination).toBe(cluster.pods[i]!.address);
          // The whole shared prefix (the system prompt's full blocks) matched, not a lucky pick.
          expect(r.log?.prefixMatchBlocks as number).toBeGreaterThanOrEqual(8);
        }
      }
    }, 120_000);

    it("takes a block away when the pod's BlockRemoved arrives through the map", async () => {
      const before = await route(chat(PREFIXES[0]!, "still there?"));
      expect(before.log?.prefixMatchBlocks as number).toBeGreaterThanOrEqual(8);
      // Pod 0 serves two other long prompts: with 24 blocks it must evict prefix 0's cached blocks.
      await serveOn(0, chat(PREFIXES[1]!.split("").reverse().join(""), "evict"));
      await serveOn(0, chat(PREFIXES[2]!.split("").reverse().join(""), "evict"));
      await until(
        async () => ((await route(chat(PREFIXES[0]!, "gone?"))).log?.prefixMatchBlocks as number) === 0,
        "prefix 0 removed from kvpick's index",
        30_000,
        50,
      );
    }, 120_000);
  });
}
