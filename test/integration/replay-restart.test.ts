// An EPP restart recovered by replay, end to end: simulated vLLM pods (real block manager, real KV events,
// vLLM's replay ROUTER) publish to kvpick (createApp, bind mode, kvEvents.replayPort). kvpick is stopped and
// a new one starts on the same address and, in bind mode, asks every pool member's replay socket for its ring
// at startup, then routes the earlier conversation back to the pod that cached it.
import { afterAll, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/app.js";
import { parseConfig } from "../../src/config/load.js";
import type { Config } from "../../src/config/schema.js";
import { BlockHasher } from "../../src/kv-index/block-hash.js";
import { createLogger } from "../../src/observability/logger.js";
import { LiveClock } from "../../src/sim/clock.js";
import { DEFAULT_ENGINE_CONFIG } from "../../src/sim/engine-config.js";
import { type SimCluster, startSimCluster } from "../../src/sim/sim-cluster.js";
import { TokenizationService } from "../../src/tokenization/tokenization-service.js";
import { EnvoyClient } from "../support/envoy-client.js";
import { until } from "../support/until.js";
import { freePort } from "../support/free-port.js";

const chat = (topic: string, words: number) => ({
  model: "Qwen3-32B",
  max_tokens: 4,
  messages: [
    {
      role: "system",
      content: Array.from(
        { length: words },
        (_, i) => `${topic} rule ${i}: answer within ${i + 2} minutes.`,
      ).join(" "),
    },
    { role: "user", content: `What about ${topic}?` },
  ],
});

describe("EPP restart with vLLM replay sockets", () => {
  const logger = createLogger({ level: "silent" });
  const tokenizer = new TokenizationService({ config: parseConfig({}).tokenizer, logger });
  let cluster: SimCluster | null = null;
  const apps: App[] = [];
  let client: EnvoyClient | null = null;

  afterAll(async () => {
    client?.close();
    for (const a of apps) await a.stop();
    await cluster?.close();
    await tokenizer.stop();
  });

  async function startApp(config: Config): Promise<{ app: App; ports: Awaited<ReturnType<App["start"]>> }> {
    const app = createApp({ config, logger, host: "127.0.0.1" });
    apps.push(app);
    // The previous kvpick's SUB may still hold the port for a moment.
    for (let attempt = 0; ; attempt++) {
      try {
        return { app, ports: await app.start() };
      } catch (err) {
        if (attempt >= 50) throw err;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  it("recovers the pods' cache state and routes to the pod holding the prefix", async () => {
    const kvPort = await freePort();
    const replayPort = await freePort("127.0.0.151");
    cluster = await startSimCluster({
      pods: 2,
      basePort: 0,
      ipMode: "loopback",
      firstHost: 151,
      model: "Qwen3-32B",
      engine: DEFAULT_ENGINE_CONFIG,
      hashAlgo: "sha256_cbor_64bit",
      hashSeed: "42",
      clock: new LiveClock(200),
      tokenizer,
      logger,
      kvEvents: { mode: "connect", endpoint: `tcp://127.0.0.1:${kvPort}` },
      kvEventsReplay: { port: replayPort },
    });
    const [owner, other] = cluster.pods;
    const config = parseConfig({
      tokenizer: { hashSeed: "42" },
      kvEvents: { endpoint: `tcp://127.0.0.1:${kvPort}`, replayPort },
      server: { grpcPort: 0, grpcHealthPort: 0, metricsPort: 0, secureServing: false },
      pool: { endpoints: cluster.pods.map((p) => p.address) },
    });
    const first = await startApp(config);

    const conversation = chat("refunds", 70);
    const post = (body: unknown) =>
      fetch(`http://${owner!.address}/v1/chat/completions`, { method: "POST", body: JSON.stringify(body) });
    const { tokenIds } = await tokenizer.tokenize("Qwen3-32B", "/v1/chat/completions", conversation);
    const chain = new BlockHasher({ scheme: "sha256_cbor_64bit", hashSeed: "42", blockSize: 64 }).hash(
      tokenIds,
    );
    const held = (app: App) => app.index.matchPrefix(chain, [owner!.options.ip]).blocks[0]!;
    // The first batches may meet ZeroMQ's slow joiner: repeat until kvpick holds the whole prefix.
    await repeatUntil(
      () => held(first.app) === chain.length,
      "first kvpick indexed the conversation",
      async () => {
        expect((await post(conversation)).status).toBe(200);
      },
    );

    await first.app.stop();
    const second = await startApp(config);
    // Bind mode: the new kvpick asks every pool member's replay socket for its ring at startup, so the
    // pod's warm cache is known before it publishes anything new (no traffic from here on).
    await until(() => held(second.app) === chain.length, "second kvpick replayed the pod at startup");
    expect(second.app.kvEvents.ingest.accuracy(owner!.options.ip)).toBe("exact");
    const text = await (await fetch(`http://127.0.0.1:${second.ports.metricsPort}/metrics`)).text();
    expect(text).toMatch(
      new RegExp(`^epp_kv_replays_total\\{pod="${owner!.options.ip}",result="complete"\\} [1-9]`, "m"),
    );
    expect(text).toContain(`epp_kv_pod_accuracy{pod="${other!.address}",state="no-events"} 1`);

    await until(
      () => second.app.endpoints.candidates().every((e) => e.metricsState === "fresh"),
      "fresh pod metrics",
    );
    client = new EnvoyClient(`127.0.0.1:${second.ports.grpcPort}`, { tls: false });
    await client.waitForReady();
    const r = await client.process({ path: "/v1/chat/completions", body: JSON.stringify(conversation) });
    expect(r.destination).toBe(owner!.address);
  });
});

/** Runs `action` until `cond` holds (bounded): each round makes the pod publish something. */
async function repeatUntil(cond: () => boolean, what: string, action: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await action();
    await new Promise((r) => setTimeout(r, 20));
  }
}
