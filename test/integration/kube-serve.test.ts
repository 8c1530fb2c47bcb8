// kvpick (createApp, as `kvpick serve --pool-name` builds it) against a fake Kubernetes API server:
// readiness follows the pool sync, connect-mode KV-event subscriptions follow the pods (one per
// data-parallel rank, on kvEvents.port + rank), and events from a rank's publisher land on that rank.
import { afterEach, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/app.js";
import { parseConfig } from "../../src/config/load.js";
import { createLogger } from "../../src/observability/logger.js";
import { FakeKubeApi, POOLS_V1, podObject, poolV1 } from "../support/fake-kube-api.js";
import { until } from "../support/until.js";
import { KvEventPublisher } from "../support/kv-event-publisher.js";
import { freePort } from "../support/free-port.js";

const POD_IP = "127.0.0.21";

let api: FakeKubeApi | null = null;
let app: App | null = null;
const publishers: KvEventPublisher[] = [];

afterEach(async () => {
  for (const p of publishers.splice(0)) p.close();
  await app?.stop(0);
  await api?.stop();
  app = null;
  api = null;
});

/** Two publishers bound on consecutive ports (rank 0 and rank 1 of one DP pod), as vLLM binds them. */
async function bindRankPublishers(): Promise<{ base: number; pubs: KvEventPublisher[] }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const base = await freePort(POD_IP);
    const pubs = [0, 1].map(() => new KvEventPublisher({ topic: `kv@${POD_IP}@Qwen3-32B` }));
    try {
      for (const [rank, p] of pubs.entries()) await p.bind(`tcp://${POD_IP}:${base + rank}`);
      return { base, pubs };
    } catch {
      for (const p of pubs) p.close();
    }
  }
  throw new Error("no two consecutive free ports");
}

describe("kvpick serve with Kubernetes discovery", () => {
  it("is ready once the pool synced and subscribes per data-parallel rank in connect mode", async () => {
    api = await new FakeKubeApi().start();
    const { base, pubs } = await bindRankPublishers();
    publishers.push(...pubs);
    const config = parseConfig({
      tokenizer: { hashSeed: "42" },
      kvEvents: { mode: "connect", port: base },
      server: { grpcPort: 0, grpcHealthPort: 0, metricsPort: 0, secureServing: false },
      pool: { name: "qwen", namespace: "default" },
    });
    const logger = createLogger({ level: "silent" });
    app = createApp({
      config,
      logger,
      host: "127.0.0.1",
      kubeConfig: api.kubeConfig(),
      discoveryBackoffMs: { initial: 10, max: 100 },
    });
    const ports = await app.start();
    const readyz = async () => (await fetch(`http://127.0.0.1:${ports.metricsPort}/readyz`)).status;

    // No pool yet: the EPP runs but is not ready.
    await until(() => api!.openWatches(POOLS_V1) === 1, "pool watch open");
    expect(await readyz()).toBe(503);

    api.apply(POOLS_V1, poolV1("qwen", { app: "vllm" }, [8000, 8001]));
    api.apply("pods", podObject("vllm-a", POD_IP));
    const a = app;
    await until(() => a.discovery!.synced(), "synced");
    expect(await readyz()).toBe(200);
    expect(a.kvEvents.connectedPods().sort()).toEqual([`${POD_IP}:8000`, `${POD_IP}:8001`]);

    // Rank 1 publishes on base + 1: its events are attributed to the rank-1 endpoint.
    await pubs[1]!.publishUntil(() => a.kvEvents.podStates().some((s) => s.podId === `${POD_IP}:8001`));
    expect(a.kvEvents.podStates().map((s) => s.podId)).toEqual([`${POD_IP}:8001`]);

    // NotReady: not a candidate, but the subscription (and the pod's cache state) stays.
    api.apply("pods", podObject("vllm-a", POD_IP, { ready: false }));
    await until(() => a.endpoints.candidates().length === 0, "not a candidate");
    expect(a.kvEvents.connectedPods()).toHaveLength(2);

    // Deleted: subscriptions closed and its index state forgotten.
    api.delete("pods", "default", "vllm-a");
    await until(() => a.kvEvents.connectedPods().length === 0, "unsubscribed");
    expect(a.kvEvents.podStates()).toEqual([]);

    // The API server going away keeps the last pool and readiness.
    api.apply("pods", podObject("vllm-b", POD_IP));
    await until(() => a.kvEvents.connectedPods().length === 2, "vllm-b subscribed");
    await api.stop();
    expect(await readyz()).toBe(200);
    expect(a.endpoints.candidates()).toHaveLength(2);
  });

  it("refuses two pool sources", () => {
    const config = parseConfig({
      tokenizer: { hashSeed: "42" },
      pool: { name: "qwen", endpoints: ["127.0.0.1:8000"] },
    });
    expect(() => createApp({ config, logger: createLogger({ level: "silent" }) })).toThrow(
      /mutually exclusive/,
    );
    const noPorts = parseConfig({ tokenizer: { hashSeed: "42" }, pool: { endpointSelector: "app=vllm" } });
    expect(() => createApp({ config: noPorts, logger: createLogger({ level: "silent" }) })).toThrow(
      /targetPorts/,
    );
  });
});
