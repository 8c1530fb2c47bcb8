// Flow control, session affinity and fallback endpoints end to end: kvpick serving real ext_proc gRPC, driven
// like Envoy (test/support/envoy-client.ts), scraping fake vLLM pods over HTTP whose load the tests set.
// Saturation here is the GIE utilization rule with queueDepthThreshold 1: a pod with one waiting request (or
// one request routed since its last scrape) is saturated, so the queue releases one request per scrape.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/app.js";
import { configFromArgs } from "../../src/cli/serve-command.js";
import { createLogger } from "../../src/observability/logger.js";
import { EnvoyClient, type EnvoyRequest, type EnvoyResult } from "../support/envoy-client.js";
import {
  FakeKubeApi,
  OBJECTIVES,
  POOLS_V1,
  objectiveV1alpha2,
  podObject,
  poolV1,
} from "../support/fake-kube-api.js";
import { FakeVllmPod } from "../support/fake-vllm-pod.js";
import { until } from "../support/until.js";
import { parseConfig } from "../../src/config/load.js";

const chat = (content: string) =>
  Buffer.from(JSON.stringify({ model: "m", messages: [{ role: "user", content }] }), "utf8");

async function startApp(pods: FakeVllmPod[], configText: object, extra: string[] = []) {
  const { config } = configFromArgs([
    ...(pods.length > 0 ? ["--endpoints", pods.map((p) => p.address).join(",")] : []),
    "--hash-seed=42",
    "--grpc-port=0",
    "--grpc-health-port=0",
    "--metrics-port=0",
    "--secure-serving=false",
    "--kv-events-endpoint=tcp://127.0.0.1:*",
    "--config-text",
    JSON.stringify(configText),
    ...extra,
  ]);
  const app = createApp({ config, logger: createLogger({ level: "silent" }), host: "127.0.0.1" });
  const ports = await app.start();
  const client = new EnvoyClient(`127.0.0.1:${ports.grpcPort}`, { tls: false });
  await client.waitForReady();
  await until(() => app.endpoints.candidates().every((e) => e.metricsState === "fresh"), "first scrapes");
  return { app, client };
}

/** Sum of a metric's samples whose labels include `match`. */
async function metricSum(app: App, name: string, match: Record<string, string> = {}): Promise<number> {
  const all = await app.metrics.registry.getMetricsAsJSON();
  const m = all.find((x) => x.name === name || `${x.name}_count` === name);
  if (m === undefined) return 0;
  let sum = 0;
  for (const v of m.values as { value: number; labels: Record<string, unknown>; metricName?: string }[]) {
    if (v.metricName !== undefined && v.metricName !== name) continue;
    if (Object.entries(match).every(([k, want]) => String(v.labels[k]) === want)) sum += v.value;
  }
  return sum;
}

const queued = (app: App) => metricSum(app, "inference_extension_flow_control_queue_size");
const outcomes = (app: App, outcome: string) =>
  metricSum(app, "inference_extension_flow_control_request_queue_duration_seconds_count", { outcome });

const errorCode = (r: EnvoyResult) =>
  (r.immediate?.json as { error?: { code?: string } } | undefined)?.error?.code;

describe("flow control on one saturable pod", () => {
  let pod: FakeVllmPod;
  let app: App;
  let client: EnvoyClient;

  beforeAll(async () => {
    pod = await new FakeVllmPod("127.0.0.61").start();
    ({ app, client } = await startApp([pod], {
      flowControl: {
        enabled: true,
        queueDepthThreshold: 1,
        maxRequestsPerBand: 6,
        requestTtlMs: 10_000,
        objectives: { interactive: 1, batch: 0, scavenger: -1 },
      },
    }));
  });

  afterEach(() => {
    pod.load = { waiting: 0, running: 0, kvCacheUsage: 0.1 };
  });

  afterAll(async () => {
    client?.close();
    await app?.stop();
    await pod?.close();
  });

  const send = (content: string, headers: Record<string, string> = {}, more: Partial<EnvoyRequest> = {}) =>
    client.process({ path: "/v1/chat/completions", body: chat(content), headers, ...more });

  it("routes at once while the pool has room", async () => {
    const r = await send("hello");
    expect(r.violations).toEqual([]);
    expect(r.destination).toBe(pod.address);
  });

  it("queues while saturated and releases by priority, then round-robin between fairness ids", async () => {
    pod.load = { waiting: 1, running: 4, kvCacheUsage: 0.5 };
    await until(() => app.endpoints.candidates()[0]?.metrics?.waiting === 1, "saturated reading");
    const order: string[] = [];
    const go = (tag: string, objective: string, flow: string) =>
      send(tag, { "x-gateway-inference-objective": objective, "x-gateway-inference-fairness-id": flow }).then(
        (r) => {
          order.push(tag);
          return r;
        },
      );
    const pending: Promise<EnvoyResult>[] = [];
    // Batch tenant "b" floods first, tenant "c" sends one, then an interactive request arrives last.
    for (const [tag, objective, flow] of [
      ["b1", "batch", "b"],
      ["b2", "batch", "b"],
      ["b3", "batch", "b"],
      ["c1", "batch", "c"],
      ["i1", "interactive", "i"],
    ] as const) {
      pending.push(go(tag, objective, flow));
      await until(async () => (await queued(app)) === pending.length, `${tag} queued`);
    }
    expect(order).toEqual([]);
    pod.load = { waiting: 0, running: 4, kvCacheUsage: 0.5 };
    const results = await Promise.all(pending);
    for (const r of results) expect(r.destination).toBe(pod.address);
    expect(order).toEqual(["i1", "b1", "c1", "b2", "b3"]);
    expect(await queued(app)).toBe(0);
  });

  it("sheds a sheddable request (negative priority) at once with 429, never queueing it", async () => {
    pod.load = { waiting: 1, running: 4, kvCacheUsage: 0.5 };
    await until(() => app.endpoints.candidates()[0]?.metrics?.waiting === 1, "saturated reading");
    const before = await outcomes(app, "RejectedCapacity");
    const r = await send("shed me", { "x-gateway-inference-objective": "scavenger" });
    expect(r.immediate?.status).toBe(429);
    expect(errorCode(r)).toBe("EPP_SHED");
    expect((r.immediate!.json as { error: { type: string } }).error.type).toBe("rate_limit_error");
    expect(r.immediate?.headers.get("retry-after")).toBe("1");
    expect(await outcomes(app, "RejectedCapacity")).toBe(before + 1);
  });

  it("answers 429 when the request's queue is full", async () => {
    pod.load = { waiting: 1, running: 4, kvCacheUsage: 0.5 };
    await until(() => app.endpoints.candidates()[0]?.metrics?.waiting === 1, "saturated reading");
    const waiting = Array.from({ length: 6 }, (_, i) => send(`fill ${i}`));
    await until(async () => (await queued(app)) === 6, "band full");
    const r = await send("one too many");
    expect(r.immediate?.status).toBe(429);
    expect(errorCode(r)).toBe("EPP_QUEUE_FULL");
    pod.load = { waiting: 0, running: 0, kvCacheUsage: 0.1 };
    for (const w of await Promise.all(waiting)) expect(w.destination).toBe(pod.address);
  });

  it("answers 429 when the client's deadline passes in the queue", async () => {
    pod.load = { waiting: 1, running: 4, kvCacheUsage: 0.5 };
    await until(() => app.endpoints.candidates()[0]?.metrics?.waiting === 1, "saturated reading");
    const started = Date.now();
    const r = await send("in a hurry", { "x-llm-d-inference-ttl": "150ms" });
    const waited = Date.now() - started;
    expect(r.immediate?.status).toBe(429);
    expect(errorCode(r)).toBe("EPP_QUEUE_TIMEOUT");
    expect(waited).toBeGreaterThanOrEqual(140);
    expect(waited).toBeLessThan(5_000);
    expect(await queued(app)).toBe(0);
  });

  it("takes a cancelled stream out of the queue at once", async () => {
    pod.load = { waiting: 1, running: 4, kvCacheUsage: 0.5 };
    await until(() => app.endpoints.candidates()[0]?.metrics?.waiting === 1, "saturated reading");
    const before = await outcomes(app, "EvictedContextCancelled");
    const abort = new AbortController();
    const r = send("never mind", {}, { signal: abort.signal });
    await until(async () => (await queued(app)) === 1, "queued");
    abort.abort();
    await r;
    await until(async () => (await queued(app)) === 0, "left the queue");
    expect(await outcomes(app, "EvictedContextCancelled")).toBe(before + 1);
    // Nothing left behind: the next request passes as soon as the pool has room.
    pod.load = { waiting: 0, running: 0, kvCacheUsage: 0.1 };
    expect((await send("after")).destination).toBe(pod.address);
  });
});

describe("flow control with headroom for the higher band (saturationLimits)", () => {
  let pod: FakeVllmPod;
  let app: App;
  let client: EnvoyClient;

  beforeAll(async () => {
    pod = await new FakeVllmPod("127.0.0.62").start();
    // queueDepthThreshold 4: two waiting requests read as saturation 0.5, the batch band's point.
    ({ app, client } = await startApp([pod], {
      flowControl: {
        enabled: true,
        queueDepthThreshold: 4,
        requestTtlMs: 10_000,
        objectives: { interactive: 1, batch: 0 },
        saturationLimits: { "0": 0.5 },
      },
    }));
  });

  afterAll(async () => {
    client?.close();
    await app?.stop();
    await pod?.close();
  });

  const send = (content: string, objective: string) =>
    client.process({
      path: "/v1/chat/completions",
      body: chat(content),
      headers: { "x-gateway-inference-objective": objective },
    });

  it("holds the lower band at its own saturation point while the higher band still passes", async () => {
    pod.load = { waiting: 2, running: 4, kvCacheUsage: 0.1 };
    await until(() => app.endpoints.candidates()[0]?.metrics?.waiting === 2, "half-saturated reading");
    const batch = send("bulk", "batch");
    await until(async () => (await queued(app)) === 1, "batch queued");
    const interactive = await send("chat", "interactive");
    expect(interactive.destination).toBe(pod.address);
    expect(await queued(app)).toBe(1);
    pod.load = { waiting: 0, running: 4, kvCacheUsage: 0.1 };
    expect((await batch).destination).toBe(pod.address);
  });

  it("labels inference_objective_request_total with the request's resolved priority", async () => {
    pod.load = { waiting: 0, running: 0, kvCacheUsage: 0.1 };
    const total = (priority: string) => metricSum(app, "inference_objective_request_total", { priority });
    const before = { one: await total("1"), zero: await total("0") };
    await send("chat", "interactive");
    await send("unknown objective", "no-such-objective");
    expect(await total("1")).toBe(before.one + 1);
    expect(await total("0")).toBe(before.zero + 1);
  });
});

describe("a reserve for the higher band (priority-reserve-filter + its own saturation point)", () => {
  const pods: FakeVllmPod[] = [];
  let app: App;
  let client: EnvoyClient;

  beforeAll(async () => {
    for (const ip of ["127.0.0.81", "127.0.0.82", "127.0.0.83"]) pods.push(await new FakeVllmPod(ip).start());
    // The middle pod is the least loaded: the first interactive request reserves it.
    pods[0]!.load = { waiting: 3, running: 4, kvCacheUsage: 0.1 };
    pods[2]!.load = { waiting: 2, running: 4, kvCacheUsage: 0.1 };
    ({ app, client } = await startApp(pods, {
      flowControl: {
        enabled: true,
        requestTtlMs: 10_000,
        objectives: { interactive: 1, batch: 0 },
        saturationLimits: { "1": 2 },
      },
      scheduling: {
        filters: [{ type: "fresh-metrics-filter" }, { type: "priority-reserve-filter" }],
      },
    }));
  });

  afterAll(async () => {
    client?.close();
    await app?.stop();
    for (const p of pods) await p.close();
  });

  const send = (content: string, objective: string) =>
    client.process({
      path: "/v1/chat/completions",
      body: chat(content),
      headers: { "x-gateway-inference-objective": objective },
    });

  it("keeps the interactive band on its reserved pod and the batch band off it", async () => {
    const reserved = (await send("hello", "interactive")).destination;
    expect(reserved).toBe(pods[1]!.address);
    for (let i = 0; i < 6; i++) {
      expect((await send(`document ${i}`, "batch")).destination).not.toBe(reserved);
      expect((await send(`question ${i}`, "interactive")).destination).toBe(reserved);
    }
  });

  it("lets the interactive band pass while the batch band waits for the saturated pool", async () => {
    for (const p of pods) p.load = { waiting: 5, running: 8, kvCacheUsage: 0.5 };
    await until(
      () => app.endpoints.candidates().every((e) => e.metrics?.waiting === 5),
      "saturated readings",
    );
    const batch = send("bulk", "batch");
    await until(async () => (await queued(app)) === 1, "batch queued");
    expect((await send("chat", "interactive")).destination).toBe(pods[1]!.address);
    expect(await queued(app)).toBe(1);
    for (const p of pods) p.load = { waiting: 0, running: 4, kvCacheUsage: 0.1 };
    expect((await batch).destination).not.toBe(pods[1]!.address);
  });
});

describe("flow control on a Kubernetes pool", () => {
  let api: FakeKubeApi;
  let app: App;
  let client: EnvoyClient;
  let pod: FakeVllmPod;

  beforeAll(async () => {
    api = await new FakeKubeApi().start();
    pod = await new FakeVllmPod("127.0.0.69").start();
    api.apply(POOLS_V1, poolV1("qwen", { app: "vllm" }, [Number(pod.address.split(":")[1])]));
    api.apply(OBJECTIVES, objectiveV1alpha2("premium", "qwen", 5));
    api.apply(OBJECTIVES, objectiveV1alpha2("other-pools", "another-pool", 9));
    const config = parseConfig({
      tokenizer: { hashSeed: "42" },
      kvEvents: { endpoint: "tcp://127.0.0.1:*" },
      server: { grpcPort: 0, grpcHealthPort: 0, metricsPort: 0, secureServing: false },
      pool: { name: "qwen", namespace: "default" },
      flowControl: { enabled: true, queueDepthThreshold: 1, objectives: { scavenger: -1 } },
    });
    app = createApp({
      config,
      logger: createLogger({ level: "silent" }),
      host: "127.0.0.1",
      kubeConfig: api.kubeConfig(),
      discoveryBackoffMs: { initial: 10, max: 100 },
    });
    const ports = await app.start();
    client = new EnvoyClient(`127.0.0.1:${ports.grpcPort}`, { tls: false });
    await client.waitForReady();
    await until(() => app.discovery!.synced(), "pool synced");
  });

  afterAll(async () => {
    client?.close();
    await app?.stop(0);
    await api?.stop();
    await pod?.close();
  });

  it("answers 503 at once when the pool has no ready endpoint at all", async () => {
    const started = Date.now();
    const r = await client.process({ path: "/v1/chat/completions", body: chat("anyone?") });
    expect(r.immediate?.status).toBe(503);
    expect((r.immediate!.json as { error: { message: string } }).error.message).toContain(
      "the pool has no capacity",
    );
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("takes priorities from the pool's InferenceObjectives, watched", async () => {
    api.apply("pods", podObject("vllm-a", pod.ip));
    await until(() => app.endpoints.candidates().some((e) => e.metricsState === "fresh"), "pod scraped");
    pod.load = { waiting: 1, running: 1, kvCacheUsage: 0.5 };
    await until(() => app.endpoints.candidates()[0]?.metrics?.waiting === 1, "saturated reading");
    const order: string[] = [];
    const go = (tag: string, objective: string) =>
      client
        .process({
          path: "/v1/chat/completions",
          body: chat(tag),
          headers: { "x-gateway-inference-objective": objective },
        })
        .then((r) => {
          order.push(tag);
          return r;
        });
    // "other-pools" belongs to another pool (priority 9 does not apply here): default priority 0.
    const pending = [go("plain", "unknown-objective"), go("other", "other-pools")];
    await until(async () => (await queued(app)) === 2, "two queued");
    pending.push(go("premium", "premium"));
    await until(async () => (await queued(app)) === 3, "three queued");
    pod.load = { waiting: 0, running: 1, kvCacheUsage: 0.5 };
    await Promise.all(pending);
    expect(order).toEqual(["premium", "plain", "other"]);
    const prio = await metricSum(
      app,
      "inference_extension_flow_control_request_queue_duration_seconds_count",
      {
        priority: "5",
        outcome: "Dispatched",
      },
    );
    expect(prio).toBe(1);
  });
});

describe("a GIE EndpointPickerConfig with flowControl", () => {
  it("loads, turns flow control on with its TTL and detector thresholds, and runs", async () => {
    const pod = await new FakeVllmPod("127.0.0.62").start();
    const gie = {
      apiVersion: "inference.networking.x-k8s.io/v1alpha1",
      kind: "EndpointPickerConfig",
      featureGates: ["flowControl"],
      plugins: [
        { type: "queue-scorer" },
        { type: "max-score-picker" },
        { type: "utilization-detector", parameters: { queueDepthThreshold: 2, kvCacheUtilThreshold: 0.9 } },
      ],
      schedulingProfiles: [
        { name: "default", plugins: [{ pluginRef: "queue-scorer" }, { pluginRef: "max-score-picker" }] },
      ],
      saturationDetector: { pluginRef: "utilization-detector" },
      flowControl: {
        maxBytes: "1Gi",
        defaultRequestTTL: "200ms",
        priorityBands: [{ priority: 0, maxBytes: "64Mi", fairnessPolicyRef: "round-robin-fairness-policy" }],
      },
    };
    const { app, client } = await startApp([pod], gie);
    try {
      expect(app.config.flowControl).toMatchObject({
        enabled: true,
        requestTtlMs: 200,
        maxBytes: 2 ** 30,
        maxBytesPerBand: 64 * 2 ** 20,
        queueDepthThreshold: 2,
        kvCacheUtilThreshold: 0.9,
      });
      expect((await client.process({ path: "/v1/chat/completions", body: chat("hi") })).destination).toBe(
        pod.address,
      );
      pod.load = { waiting: 2, running: 4, kvCacheUsage: 0.5 }; // 2 / queueDepthThreshold 2 = saturated
      await until(() => app.endpoints.candidates()[0]?.metrics?.waiting === 2, "saturated reading");
      const started = Date.now();
      const r = await client.process({ path: "/v1/chat/completions", body: chat("waits") });
      expect(r.immediate?.status).toBe(429);
      expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    } finally {
      client.close();
      await app.stop();
      await pod.close();
    }
  });
});

describe("fallback endpoints and the served endpoint", () => {
  const pods: FakeVllmPod[] = [];
  let app: App;
  let client: EnvoyClient;

  beforeAll(async () => {
    for (const ip of ["127.0.0.63", "127.0.0.64", "127.0.0.65"]) pods.push(await new FakeVllmPod(ip).start());
    // Distinct queues order the list (queue-scorer): pods[0], pods[1], pods[2].
    pods.forEach((p, i) => {
      p.load = { waiting: i * 10, running: 0, kvCacheUsage: 0.1 };
    });
    // One scrape at start, then none for the test's duration: dispatch credit stays visible.
    ({ app, client } = await startApp(pods, {
      endpoints: { scrapeIntervalMs: 60_000, staleAfterMs: 3_600_000 },
      scheduling: {
        filters: [],
        scorers: [{ type: "queue-scorer", weight: 1 }],
        picker: { type: "max-score-picker", parameters: { maxNumOfEndpoints: 3 } },
      },
    }));
  });

  afterAll(async () => {
    client?.close();
    await app?.stop();
    for (const p of pods) await p.close();
  });

  const credit = () =>
    new Map(app.endpoints.candidates().map((e) => [e.address, e.dispatched?.requests ?? 0]));

  it("sends the winner then the ordered fallbacks, comma-separated, in the header and the metadata alike", async () => {
    const r = await client.process({ path: "/v1/chat/completions", body: chat("list") });
    expect(r.violations).toEqual([]);
    expect(r.destination).toBe(pods.map((p) => p.address).join(","));
    const lb = r.dynamicMetadata["envoy.lb"] as Record<string, unknown>;
    expect(lb["x-gateway-destination-endpoint"]).toBe(r.destination);
  });

  it("moves dispatch credit to the endpoint that really served", async () => {
    const [first, , last] = pods.map((p) => p.address) as [string, string, string];
    const before = credit();
    const r = await client.process({
      path: "/v1/chat/completions",
      body: chat("fell back"),
      response: {
        headers: { "content-type": "application/json", "x-gateway-destination-endpoint-served": last },
        chunks: ['{"id":"x","choices":[]}'],
      },
    });
    expect(r.violations).toEqual([]);
    expect(r.destination?.split(",")[0]).toBe(first);
    const after = credit();
    expect(after.get(first)).toBe(before.get(first));
    expect(after.get(last)).toBe((before.get(last) ?? 0) + 1);
  });

  it("keeps the credit on the picked endpoint when it served", async () => {
    const first = pods[0]!.address;
    const before = credit();
    await client.process({
      path: "/v1/chat/completions",
      body: chat("served as picked"),
      response: {
        headers: { "content-type": "application/json", "x-gateway-destination-endpoint-served": first },
        chunks: ["{}"],
      },
    });
    expect(credit().get(first)).toBe((before.get(first) ?? 0) + 1);
  });
});

describe("session affinity", () => {
  const pods: FakeVllmPod[] = [];
  let app: App;
  let client: EnvoyClient;

  beforeAll(async () => {
    for (const ip of ["127.0.0.66", "127.0.0.67", "127.0.0.68"]) pods.push(await new FakeVllmPod(ip).start());
    ({ app, client } = await startApp(pods, {
      scheduling: {
        scorers: [
          { type: "session-affinity-scorer", weight: 10 },
          { type: "queue-scorer", weight: 1 },
        ],
      },
    }));
  });

  afterAll(async () => {
    client?.close();
    await app?.stop();
    for (const p of pods) await p.close();
  });

  const send = (session: string | null) =>
    client.process({
      path: "/v1/chat/completions",
      body: chat("turn"),
      headers: session === null ? {} : { "x-session-token": session },
    });

  it("keeps a session on its pod while that pod is healthy, then moves it", async () => {
    const home = (await send("conv-1")).destination!;
    // Make the session's pod the busiest: the queue scorer alone would now pick another one.
    for (const p of pods) p.load = { waiting: p.address === home ? 20 : 0, running: 0, kvCacheUsage: 0.1 };
    await until(
      () => app.endpoints.candidates().find((e) => e.address === home)?.metrics?.waiting === 20,
      "busy reading",
    );
    for (let i = 0; i < 5; i++) expect((await send("conv-1")).destination).toBe(home);
    expect((await send(null)).destination).not.toBe(home);
    // The pod goes away (its scrapes fail): the session moves to a healthy pod and stays there.
    await pods.find((p) => p.address === home)!.close();
    await until(
      () => app.endpoints.candidates().find((e) => e.address === home)?.metricsState === "failed",
      "failed scrape",
    );
    const moved = (await send("conv-1")).destination!;
    expect(moved).not.toBe(home);
    expect((await send("conv-1")).destination).toBe(moved);
  });
});
