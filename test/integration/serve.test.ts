// The whole request path on real sockets: an Envoy-behaving ext_proc client → kvpick (createApp, as
// `kvpick serve` builds it) with vLLM-format KV events on a real ZeroMQ socket and fake pods' /metrics.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/app.js";
import { parseConfig } from "../../src/config/load.js";
import type { ConfigInput } from "../../src/config/schema.js";
import { BlockHasher } from "../../src/kv-index/block-hash.js";
import { createLogger } from "../../src/observability/logger.js";
import { TokenizationService } from "../../src/tokenization/tokenization-service.js";
import { EnvoyClient, splitAt } from "../support/envoy-client.js";
import { FakeVllmPod } from "../support/fake-vllm-pod.js";
import { until } from "../support/until.js";
import { KvEventPublisher } from "../support/kv-event-publisher.js";

const SYSTEM =
  "You are the travel desk assistant of Example Corp. " +
  Array.from(
    { length: 60 },
    (_, i) => `Policy ${i}: economy class for trips under ${i + 2} hours; hotels up to ${100 + i} EUR.`,
  ).join(" ");

const firstTurn = {
  model: "Qwen3-32B",
  messages: [
    { role: "system", content: SYSTEM },
    { role: "user", content: "Can I fly business class to Lyon?" },
  ],
};
const secondTurn = {
  model: "Qwen3-32B",
  messages: [
    ...firstTurn.messages,
    { role: "assistant", content: "No: the trip is shorter than six hours, so economy applies." },
    { role: "user", content: "And the hotel budget?" },
  ],
};

interface Started {
  app: App;
  client: EnvoyClient;
  logs: Record<string, unknown>[];
  ports: Awaited<ReturnType<App["start"]>>;
}

async function startKvpick(pods: FakeVllmPod[], extra: ConfigInput = {}): Promise<Started> {
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: "debug",
    destination: { write: (s: string) => void logs.push(JSON.parse(s)) },
  });
  const config = parseConfig({
    ...extra,
    tokenizer: { hashSeed: "42", ...extra.tokenizer },
    kvEvents: { endpoint: "tcp://127.0.0.1:*" },
    server: { grpcPort: 0, grpcHealthPort: 0, metricsPort: 0, secureServing: false, ...extra.server },
    pool: { endpoints: pods.map((p) => p.address) },
  });
  const app = createApp({ config, logger, host: "127.0.0.1" });
  const ports = await app.start();
  const client = new EnvoyClient(`127.0.0.1:${ports.grpcPort}`, { tls: config.server.secureServing });
  await client.waitForReady();
  await until(
    () => app.endpoints.candidates().every((e) => e.metricsState === "fresh"),
    "every pod's first scrape",
  );
  return { app, client, logs, ports };
}

const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const handled = (logs: Record<string, unknown>[]) => logs.filter((l) => l.msg === "Request handled");

describe("kvpick serve, end to end", () => {
  const pods: FakeVllmPod[] = [];
  let k: Started;
  let tokenizer: TokenizationService;
  const hasher = new BlockHasher({ scheme: "sha256_cbor_64bit", hashSeed: "42", blockSize: 64 });

  beforeAll(async () => {
    for (let i = 11; i <= 14; i++) pods.push(await new FakeVllmPod(`127.0.0.${i}`).start());
    k = await startKvpick(pods);
    tokenizer = new TokenizationService({
      config: parseConfig({}).tokenizer,
      logger: createLogger({ level: "silent" }),
    });
  });

  afterAll(async () => {
    k.client.close();
    await k.app.stop();
    await tokenizer.stop();
    await Promise.all(pods.map((p) => p.close()));
  });

  it("routes a conversation's follow-up turn to the pod that reported its prefix (reference verification)", async () => {
    // Turn 1: no pod has anything cached; kvpick picks one by load.
    const r1 = await k.client.process({
      path: "/v1/chat/completions",
      body: json(firstTurn),
      headers: { "x-request-id": "turn-1" },
    });
    expect(r1.violations).toEqual([]);
    expect(r1.immediate).toBeNull();
    const chosen = pods.find((p) => p.address === r1.destination)!;
    expect(chosen).toBeDefined();

    // That pod's vLLM caches the prompt's full blocks and says so on the reference topic kv@<pod-ip>@<model>.
    const { tokenIds } = await tokenizer.tokenize("Qwen3-32B", "/v1/chat/completions", firstTurn);
    const chain = hasher.hash(tokenIds);
    expect(chain.length).toBeGreaterThan(4);
    const pub = new KvEventPublisher({ topic: `kv@${chosen.ip}@Qwen3-32B` });
    pub.connect(k.ports.kvEventsEndpoint!);
    try {
      await pub.publishUntil(() => k.app.kvEvents.podStates().some((s) => s.podId === chosen.ip));
      await pub.publish([
        {
          type: "BlockStored",
          hashes: [...chain],
          parent: null,
          tokenIds: [...tokenIds.subarray(0, chain.length * 64)],
          blockSize: 64,
        },
      ]);
      await until(
        () => k.app.index.hasPod(chosen.ip) && k.app.index.stats().entries >= chain.length,
        "blocks indexed",
      );
    } finally {
      pub.close();
    }
    const state = k.app.kvEvents.podStates().find((s) => s.podId === chosen.ip)!;
    expect(state.hashChecks).toBe(1);
    expect(state.hashMismatches).toBe(0);

    // Make the chosen pod the busier one: the cache must still win at a modest load gap.
    chosen.load = { waiting: 1, running: 4, kvCacheUsage: 0.3 };
    await until(() => k.app.endpoints.get(chosen.address)?.metrics?.waiting === 1, "scrape of the new load");

    // Turn 2 shares turn 1's prompt as its prefix.
    const r2 = await k.client.process({
      path: "/v1/chat/completions",
      body: json(secondTurn),
      headers: { "x-request-id": "turn-2" },
    });
    expect(r2.violations).toEqual([]);
    expect(r2.destination).toBe(chosen.address);

    const lines = handled(k.logs).filter(
      (l) => l["x-request-id"] === "turn-1" || l["x-request-id"] === "turn-2",
    );
    expect(lines).toHaveLength(2);
    expect(lines[0]!.endpoint).toBe(lines[1]!.endpoint);
    expect(lines[1]!.prefixMatchBlocks).toBeGreaterThanOrEqual(chain.length - 1);
    expect(lines[1]!.totalBlocks).toBeGreaterThan(lines[1]!.prefixMatchBlocks as number);
    for (const l of lines) {
      expect(l).toMatchObject({ model: "Qwen3-32B", targetModel: "Qwen3-32B", level: "info" });
      expect(typeof l.schedulingLatencyUs).toBe("number");
      expect(JSON.stringify(l)).not.toContain("Lyon"); // no prompt text in the audit log
    }
    chosen.load = { waiting: 0, running: 0, kvCacheUsage: 0.1 };
  });

  it("overwrites a client-chosen destination and echoes the body byte for byte, split anywhere", async () => {
    const body = json({
      model: "Qwen3-32B",
      messages: [{ role: "user", content: "Grüße aus Köln — 東京 🚄" }],
    });
    const umlaut = body.indexOf(Buffer.from("ü")) + 1; // inside a 2-byte UTF-8 sequence
    const r = await k.client.process({
      path: "/v1/chat/completions",
      headers: { "x-gateway-destination-endpoint": "6.6.6.6:80" },
      chunks: splitAt(body, [3, umlaut, umlaut + 5]),
      duplicateEos: true,
    });
    expect(r.violations).toEqual([]);
    expect(pods.map((p) => p.address)).toContain(r.destination);
    expect(r.dynamicMetadata["envoy.lb"]).toEqual({ "x-gateway-destination-endpoint": r.destination });
    expect(r.body.equals(body)).toBe(true);
  });

  it("works in BUFFERED mode and re-chunks bodies above 62,000 bytes", async () => {
    const long = json({ model: "Qwen3-32B", messages: [{ role: "user", content: "word ".repeat(40_000) }] });
    expect(long.length).toBeGreaterThan(3 * 62_000);
    const streamed = await k.client.process({
      path: "/v1/chat/completions",
      chunks: splitAt(long, [1000, 70_000]),
    });
    expect(streamed.violations).toEqual([]);
    expect(streamed.body.equals(long)).toBe(true);
    expect(Math.max(...streamed.bodyChunkSizes)).toBeLessThanOrEqual(62_000);
    const buffered = await k.client.process({
      path: "/v1/chat/completions",
      body: json(firstTurn),
      mode: "BUFFERED",
    });
    expect(buffered.violations).toEqual([]);
    expect(pods.map((p) => p.address)).toContain(buffered.destination);
    expect(buffered.body.equals(json(firstTurn))).toBe(true);
  });

  it("answers the documented errors with OpenAI-style JSON bodies", async () => {
    const bad = await k.client.process({ path: "/v1/chat/completions", body: "{not json" });
    expect(bad.immediate?.status).toBe(400);
    expect(bad.immediate?.json).toMatchObject({ error: { code: "EPP_BAD_REQUEST" } });
    const noModel = await k.client.process({ path: "/v1/chat/completions", body: json({ messages: [] }) });
    expect(noModel.immediate?.status).toBe(400);
    expect(JSON.stringify(noModel.immediate?.json)).toContain("model not found in request body");
    const badMessages = await k.client.process({
      path: "/v1/chat/completions",
      body: json({ model: "Qwen3-32B", messages: [{ role: "user", content: 42 }] }),
    });
    expect(badMessages.immediate?.status).toBe(400);
    const noneInSubset = await k.client.process({
      path: "/v1/chat/completions",
      body: json(firstTurn),
      subsetHint: [],
    });
    expect(noneInSubset.immediate?.status).toBe(503);
  });

  it("restricts candidates to the gateway's subset hint", async () => {
    const only = pods[2]!.address;
    for (let i = 0; i < 5; i++) {
      const r = await k.client.process({
        path: "/v1/chat/completions",
        body: json(firstTurn),
        subsetHint: [only],
      });
      expect(r.destination).toBe(only);
    }
  });

  it("routes header-only requests at once", async () => {
    const r = await k.client.process({ method: "GET", path: "/v1/models" });
    expect(r.violations).toEqual([]);
    expect(pods.map((p) => p.address)).toContain(r.destination);
  });

  it("exposes the request-path metrics", async () => {
    const text = await (await fetch(`http://127.0.0.1:${k.ports.metricsPort}/metrics`)).text();
    expect(text).toMatch(/^epp_requests_total\{code="200"\} \d+/m);
    expect(text).toMatch(/^epp_requests_total\{code="400"\} 3/m);
    expect(text).toMatch(/^epp_scheduling_duration_seconds_count \d+/m);
    expect(text).toMatch(/^epp_kv_events_applied_total\{pod="127\.0\.0\.\d+",type="BlockStored"\} 1/m);
    expect(text).toMatch(/^epp_kv_index_entries \d+/m);
    // One pod published events (the reference-verification test), the others never did.
    expect(text.match(/^epp_kv_pod_events_seen\{endpoint="127\.0\.0\.\d+:\d+"\} 1$/gm)).toHaveLength(1);
    expect(text.match(/^epp_kv_pod_events_seen\{endpoint="127\.0\.0\.\d+:\d+"\} 0$/gm)).toHaveLength(3);
  });
});

describe("kvpick serve with TLS and a body limit", () => {
  it("serves ext_proc over TLS with a self-signed certificate and answers 413 past --max-body-bytes", async () => {
    const pod = await new FakeVllmPod("127.0.0.21").start();
    const k = await startKvpick([pod], { server: { secureServing: true, maxBodyBytes: 100_000 } });
    try {
      const ok = await k.client.process({ path: "/v1/chat/completions", body: json(firstTurn) });
      expect(ok.destination).toBe(pod.address);
      const big = json({ model: "Qwen3-32B", messages: [{ role: "user", content: "x".repeat(150_000) }] });
      const tooBig = await k.client.process({ path: "/v1/chat/completions", body: big });
      expect(tooBig.immediate?.status).toBe(413);
    } finally {
      k.client.close();
      await k.app.stop();
      await pod.close();
    }
  });
});
