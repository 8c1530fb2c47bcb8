// kvpick (createApp, bind mode) on real sockets, from the operator's and the attacker's side: only pool pods
// may write the index, a degraded pod's cache counts less when routing, /metrics can require a bearer token
// while the probes stay open, and no prompt text reaches the logs or the metrics.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/app.js";
import { parseConfig } from "../../src/config/load.js";
import { BlockHasher } from "../../src/kv-index/block-hash.js";
import { createLogger } from "../../src/observability/logger.js";
import { TokenizationService } from "../../src/tokenization/tokenization-service.js";
import { EnvoyClient } from "../support/envoy-client.js";
import { FakeVllmPod } from "../support/fake-vllm-pod.js";
import { until } from "../support/until.js";
import { KvEventPublisher } from "../support/kv-event-publisher.js";

const MARKER = "Zanzibar-quartz-7731";
const request = {
  model: "Qwen3-32B",
  messages: [
    {
      role: "system",
      content: `${MARKER}: ${Array.from({ length: 60 }, (_, i) => `Clause ${i} of the ${MARKER} charter.`).join(" ")}`,
    },
    { role: "user", content: `Summarise ${MARKER}.` },
  ],
};
const TOKEN = "s3cret-metrics-token";

describe("kvpick security and degraded routing", () => {
  const pods: FakeVllmPod[] = [];
  const publishers: KvEventPublisher[] = [];
  const logs: string[] = [];
  let app: App;
  let client: EnvoyClient;
  let metricsUrl: string;
  let kvEndpoint: string;
  let chain: BigUint64Array;
  let tokenIds: Uint32Array;

  beforeAll(async () => {
    for (const ip of ["127.0.0.41", "127.0.0.42"]) pods.push(await new FakeVllmPod(ip).start());
    const dir = mkdtempSync(join(tmpdir(), "kvpick-token-"));
    writeFileSync(join(dir, "token"), `${TOKEN}\n`);
    const logger = createLogger({ level: "trace", destination: { write: (s: string) => void logs.push(s) } });
    const config = parseConfig({
      tokenizer: { hashSeed: "42" },
      kvEvents: { endpoint: "tcp://127.0.0.1:*" },
      server: {
        grpcPort: 0,
        grpcHealthPort: 0,
        metricsPort: 0,
        secureServing: false,
        metricsBearerTokenFile: join(dir, "token"),
      },
      pool: { endpoints: pods.map((p) => p.address) },
    });
    app = createApp({ config, logger, host: "127.0.0.1" });
    const ports = await app.start();
    metricsUrl = `http://127.0.0.1:${ports.metricsPort}`;
    kvEndpoint = ports.kvEventsEndpoint!;
    client = new EnvoyClient(`127.0.0.1:${ports.grpcPort}`, { tls: false });
    await client.waitForReady();
    await until(() => app.endpoints.candidates().every((e) => e.metricsState === "fresh"), "first scrapes");
    const tokenizer = new TokenizationService({
      config: parseConfig({}).tokenizer,
      logger: createLogger({ level: "silent" }),
    });
    tokenIds = (await tokenizer.tokenize("Qwen3-32B", "/v1/chat/completions", request)).tokenIds;
    await tokenizer.stop();
    chain = new BlockHasher({ scheme: "sha256_cbor_64bit", hashSeed: "42", blockSize: 64 }).hash(tokenIds);
  });

  afterAll(async () => {
    for (const p of publishers) p.close();
    client?.close();
    await app?.stop();
    await Promise.all(pods.map((p) => p.close()));
  });

  function publisher(podId: string): KvEventPublisher {
    const pub = new KvEventPublisher({ topic: `kv@${podId}@Qwen3-32B` });
    pub.connect(kvEndpoint);
    publishers.push(pub);
    return pub;
  }

  const metrics = async (token: string | null = TOKEN) =>
    fetch(`${metricsUrl}/metrics`, token === null ? {} : { headers: { authorization: `Bearer ${token}` } });
  const storeChain = () => ({ type: "BlockStored" as const, hashes: [...chain], parent: null });

  it("requires the bearer token on /metrics and keeps /healthz and /readyz open", async () => {
    expect(chain.length).toBeGreaterThan(4);
    const none = await metrics(null);
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect((await metrics("wrong-token")).status).toBe(401);
    expect((await fetch(`${metricsUrl}/metrics`, { headers: { authorization: TOKEN } })).status).toBe(401);
    const ok = await metrics();
    expect(ok.status).toBe(200);
    expect(await ok.text()).toMatch(/^epp_kv_index_entries 0$/m);
    expect((await fetch(`${metricsUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${metricsUrl}/readyz`)).status).toBe(200);
  });

  it("ignores KV events from pods outside the pool: counted without their id, index unchanged", async () => {
    const intruder = publisher("10.66.6.6");
    const deadline = Date.now() + 10_000;
    let text = "";
    while (!/^epp_kv_events_rejected_total\{reason="not-in-pool"\} [1-9]/m.test(text)) {
      if (Date.now() > deadline) throw new Error("rejections not counted");
      await intruder.publish([storeChain()]);
      await new Promise((r) => setTimeout(r, 10));
      text = await (await metrics()).text();
    }
    expect(app.index.stats().entries).toBe(0);
    expect(app.kvEvents.podStates()).toEqual([]);
    expect(text).not.toContain("10.66.6.6");
    const r = await client.process({ path: "/v1/chat/completions", body: JSON.stringify(request) });
    expect(pods.map((p) => p.address)).toContain(r.destination);
  });

  it("gives a degraded pod's cache less credit: of two pods holding the prefix at equal load, the exact one wins", async () => {
    const [a, b] = pods;
    const pa = publisher(a!.ip);
    const pb = publisher(b!.ip);
    await pa.publishUntil(() => app.kvEvents.podStates().some((s) => s.podId === a!.ip));
    await pb.publishUntil(() => app.kvEvents.podStates().some((s) => s.podId === b!.ip));
    await pa.publish([{ ...storeChain(), tokenIds: [...tokenIds.subarray(0, 64)], blockSize: 64 }]);
    pb.seq += 3n; // three batches lost on the wire; no replay socket configured
    await pb.publish([storeChain()]);
    await until(
      () => app.index.matchPrefix(chain, [a!.ip, b!.ip]).blocks.every((n) => n === chain.length),
      "both pods hold the prefix",
    );
    expect(app.kvEvents.ingest.accuracy(a!.ip)).toBe("exact");
    expect(app.kvEvents.ingest.accuracy(b!.ip)).toBe("degraded");
    const text = await (await metrics()).text();
    expect(text).toContain(`epp_kv_pod_accuracy{pod="${a!.ip}",state="exact"} 1`);
    expect(text).toContain(`epp_kv_pod_accuracy{pod="${b!.ip}",state="degraded"} 1`);
    expect(text).toContain(`epp_kv_pod_state_stale{pod="${b!.ip}"} 1`);
    for (let i = 0; i < 6; i++) {
      const r = await client.process({ path: "/v1/chat/completions", body: JSON.stringify(request) });
      expect(r.destination).toBe(a!.address);
    }
  });

  it("keeps prompt text out of every log line (trace level) and out of /metrics", async () => {
    const text = await (await metrics()).text();
    expect(logs.length).toBeGreaterThan(10);
    expect(logs.filter((l) => l.includes(MARKER))).toEqual([]);
    expect(logs.filter((l) => l.includes("Clause 1"))).toEqual([]);
    expect(text).not.toContain(MARKER);
  });
});
