// A real `kvpick serve` child (no --hash-seed, no speculative entries) in front of three simulated vLLM pods
// that connect their KV-event PUB sockets to it, with a real ext_proc client: what the end-to-end tests of
// learnt block sizes and token keys share. `route` asks kvpick where a body goes and returns its
// "Request handled" line; `serveOn` sends a body straight to one pod so its engine caches (and publishes) it.
import { createInterface } from "node:readline";
import { expect } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import type { HashAlgo } from "../../src/config/schema.js";
import { createLogger } from "../../src/observability/logger.js";
import { LiveClock } from "../../src/sim/clock.js";
import type { EngineConfig } from "../../src/sim/engine-config.js";
import type { EventLayout } from "../../src/sim/kv-event-encoder.js";
import { type SimCluster, startSimCluster } from "../../src/sim/sim-cluster.js";
import { TokenizationService } from "../../src/tokenization/tokenization-service.js";
import { EnvoyClient } from "./envoy-client.js";
import { freePort } from "./free-port.js";
import { type ServeChild, spawnServe } from "./serve-child.js";
import { until } from "./until.js";

export const SIM_MODEL = "Qwen3-32B";

/** Three distinct system prompts of ~620 tokens each (billing, shipping, warranty). */
export const TOPIC_PROMPTS = ["billing", "shipping", "warranty"].map(
  (topic) =>
    `You are the ${topic} assistant. ` +
    Array.from(
      { length: 40 },
      (_, i) => `${topic} rule ${i}: case ${i * 13} needs form ${topic}-${i + 7}.`,
    ).join(" "),
);

export const topicChat = (system: string, question: string) => ({
  model: SIM_MODEL,
  max_tokens: 2,
  messages: [
    { role: "system", content: system },
    { role: "user", content: question },
  ],
});

export interface SimServeStack {
  cluster: SimCluster;
  serve: ServeChild;
  /** Every JSON log line kvpick wrote so far. */
  lines: Record<string, unknown>[];
  route(body: unknown): Promise<{ destination: string | null; log: Record<string, unknown> }>;
  serveOn(pod: number, body: unknown): Promise<void>;
  close(): Promise<void>;
}

export async function startSimServeStack(o: {
  engine: EngineConfig;
  hashAlgo: HashAlgo;
  hashSeed: string;
  eventLayout: EventLayout;
}): Promise<SimServeStack> {
  const logger = createLogger({ level: "silent" });
  const tokenizer = new TokenizationService({ config: parseConfig({}).tokenizer, logger });
  const kvPort = await freePort();
  const cluster = await startSimCluster({
    pods: 3,
    basePort: 0,
    ipMode: "single",
    model: SIM_MODEL,
    engine: o.engine,
    hashAlgo: o.hashAlgo,
    hashSeed: o.hashSeed,
    clock: new LiveClock(200),
    tokenizer,
    logger,
    kvEvents: { mode: "connect", endpoint: `tcp://127.0.0.1:${kvPort}` },
    eventLayout: o.eventLayout,
  });
  const serve = await spawnServe(
    [
      `--kv-events-endpoint=tcp://127.0.0.1:${kvPort}`,
      `--endpoints=${cluster.pods.map((p) => p.address).join(",")}`,
      `--hash-algo=${o.hashAlgo}`,
      // Only the pods' events may place a prefix: no speculative entries for the probes routed here.
      `--config-text={"scheduling":{"speculativeTtlMs":0}}`,
    ],
    { hashSeed: null, stdio: ["ignore", "pipe", "inherit"] },
  );
  const lines: Record<string, unknown>[] = [];
  const handled: Record<string, unknown>[] = [];
  createInterface({ input: serve.proc.stdout! }).on("line", (line) => {
    try {
      const l = JSON.parse(line) as Record<string, unknown>;
      lines.push(l);
      if (l.msg === "Request handled") handled.push(l);
    } catch {
      // not a log line
    }
  });
  const client = new EnvoyClient(`127.0.0.1:${serve.grpcPort}`);
  const close = async () => {
    client.close();
    await serve.stop();
    await cluster.close();
    await tokenizer.stop();
  };
  await client.waitForReady(90_000).catch(async (err: unknown) => {
    await close(); // the caller never gets the stack: nothing else would stop the child and the pods
    throw err;
  });
  return {
    cluster,
    serve,
    lines,
    async route(body) {
      const n = handled.length;
      const r = await client.process({ body: JSON.stringify(body), response: { status: 200 } });
      await until(() => handled.length > n, "the request's log line", 5000);
      return { destination: r.destination, log: handled[n]! };
    },
    async serveOn(pod, body) {
      const res = await fetch(`http://${cluster.pods[pod]!.address}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(200);
      await res.text();
    },
    close,
  };
}
