// A pod's speculative entries end with its cache (issue 16 leftover): what kvpick routed to a pod counts as
// cached there for the speculative TTL, but once the pod reports AllBlocksCleared over ZeroMQ the next request
// must not be credited with those blocks any more. Real sockets end to end: createApp, an Envoy-like gRPC
// client, a vLLM-format publisher, the bundled Qwen3 tokenizer.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/app.js";
import { parseConfig } from "../../src/config/load.js";
import { createLogger } from "../../src/observability/logger.js";
import { EnvoyClient } from "../support/envoy-client.js";
import { sumSamples } from "../support/fault-stack.js";
import { FakeVllmPod } from "../support/fake-vllm-pod.js";
import { KvEventPublisher } from "../support/kv-event-publisher.js";
import { until } from "../support/until.js";

const body = JSON.stringify({
  model: "Qwen3-32B",
  messages: [
    { role: "system", content: "You answer questions about a shared document. ".repeat(60) },
    { role: "user", content: "What does the document say?" },
  ],
});

describe("speculative entries and AllBlocksCleared", () => {
  let pod: FakeVllmPod;
  let publisher: KvEventPublisher;
  let app: App;
  let client: EnvoyClient;
  let metricsUrl: string;

  beforeAll(async () => {
    pod = await new FakeVllmPod("127.0.0.61").start();
    const config = parseConfig({
      tokenizer: { hashSeed: "42" },
      kvEvents: { endpoint: "tcp://127.0.0.1:*" },
      // Long enough that the entries cannot expire while the test runs.
      scheduling: { speculativeTtlMs: 60_000 },
      server: { grpcPort: 0, grpcHealthPort: 0, metricsPort: 0, secureServing: false },
      pool: { endpoints: [pod.address] },
    });
    app = createApp({ config, logger: createLogger({ level: "silent" }), host: "127.0.0.1" });
    const ports = await app.start();
    metricsUrl = `http://127.0.0.1:${ports.metricsPort}`;
    client = new EnvoyClient(`127.0.0.1:${ports.grpcPort}`, { tls: false });
    await client.waitForReady();
    await until(() => app.endpoints.candidates().every((e) => e.metricsState === "fresh"), "first scrape");
    // The pod publishes (empty batches): event-driven, so routing there records speculative entries.
    publisher = new KvEventPublisher({ topic: `kv@${pod.ip}@Qwen3-32B` });
    publisher.connect(ports.kvEventsEndpoint!);
    await publisher.publishUntil(() => app.kvEvents.ingest.published(pod.ip));
  });

  afterAll(async () => {
    publisher?.close();
    client?.close();
    await app?.stop();
    await pod?.close();
  });

  const metric = async (name: string) =>
    sumSamples(await (await fetch(`${metricsUrl}/metrics`)).text(), name);
  const route = async () => {
    const r = await client.process({ path: "/v1/chat/completions", body });
    expect(r.destination).toBe(pod.address);
  };

  it("credits blocks routed before the clear only until the pod reports AllBlocksCleared", async () => {
    await route(); // records the prompt's blocks as speculative entries on the pod
    expect(await metric("epp_speculative_entries")).toBeGreaterThanOrEqual(4);
    await route(); // the same prompt: its prefix is found in the speculative entries
    const hitsBefore = await metric("epp_speculative_hits_total");
    expect(hitsBefore).toBe(1);

    const cleared = await metric("epp_kv_events_applied_total");
    await publisher.publish([{ type: "AllBlocksCleared" }]);
    await until(async () => (await metric("epp_kv_events_applied_total")) > cleared, "the clear applied");

    await route(); // nothing the pod held before the clear may count now
    expect(await metric("epp_speculative_hits_total")).toBe(hitsBefore);
    await route(); // but what was routed after the clear does
    expect(await metric("epp_speculative_hits_total")).toBe(hitsBefore + 1);
  });
});
