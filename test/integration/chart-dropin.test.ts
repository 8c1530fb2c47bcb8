// kvpick started exactly as the GIE v1.5 `inferencepool` chart starts its EPP (config/charts/epplib/templates/
// _deployment.yaml with the chart's default values, release "qwen" in namespace "default"): the image's
// entrypoint with the chart's `args:` only (no `serve`), the env it sets (NAMESPACE, POD_NAME), its default
// EndpointPickerConfig mounted as a file, and a Kubernetes API (the fake, reached through $KUBECONFIG where a
// pod would use its service account). The only additions are what a values file's `inferenceExtension.flags`
// would add — ports and the ZeroMQ bind address, so parallel tests do not collide — rendered the way v1.5
// renders `flags` (`--key`, `"value"`, keys sorted). The chart's probes must see SERVING on
// `inference-extension`, /metrics must refuse anonymous and unauthorised scrapes and serve a service account
// allowed to `get /metrics`, and requests must reach the pool's pods over ext_proc (TLS, the chart default).
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HEALTH_SERVICE, loadProtos, serviceOf } from "../../src/ext-proc/protos.js";
import { EnvoyClient } from "../support/envoy-client.js";
import { FakeKubeApi, POOLS_V1, podObject, poolV1 } from "../support/fake-kube-api.js";
import { FakeVllmPod } from "../support/fake-vllm-pod.js";
import { freePort } from "../support/free-port.js";
import { repoRoot } from "../support/golden.js";

const POD_IPS = ["127.0.0.31", "127.0.0.32"];
const PROMETHEUS_TOKEN = "prometheus-sa-token";
const OTHER_TOKEN = "default-sa-token";

let api: FakeKubeApi;
let pods: FakeVllmPod[];
let child: ChildProcess;
let ports: { grpc: number; health: number; metrics: number; kv: number };
const stdout: string[] = [];

/** Every pod of the pool on one port, as an InferencePool's targetPorts require. */
async function startPods(): Promise<FakeVllmPod[]> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await freePort(POD_IPS[0]);
    const started: FakeVllmPod[] = [];
    try {
      for (const ip of POD_IPS) started.push(await new FakeVllmPod(ip).start(port));
      return started;
    } catch {
      await Promise.all(started.map((p) => p.close()));
    }
  }
  throw new Error("no port free on every pod IP");
}

function health(service: string): Promise<string> {
  return new Promise((resolve) => {
    const Health = serviceOf(loadProtos(), HEALTH_SERVICE);
    const client = new Health(
      `127.0.0.1:${ports.health}`,
      grpc.credentials.createInsecure(),
    ) as unknown as grpc.Client & {
      Check(req: object, options: object, cb: (err: Error | null, res?: { status: string }) => void): void;
    };
    client.Check({ service }, { deadline: Date.now() + 2000 }, (err, res) => {
      client.close();
      resolve(err ? `error: ${err.message}` : res!.status);
    });
  });
}

async function scrape(token?: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${ports.metrics}/metrics`, {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  });
  return { status: res.status, body: await res.text() };
}

beforeAll(async () => {
  api = await new FakeKubeApi().start();
  pods = await startPods();
  const targetPort = Number(pods[0]!.address.split(":")[1]);
  api.apply(POOLS_V1, poolV1("qwen", { app: "vllm-qwen3-32b" }, [targetPort]));
  for (const [i, pod] of pods.entries())
    api.apply("pods", podObject(`vllm-qwen3-32b-${i}`, pod.ip, { labels: { app: "vllm-qwen3-32b" } }));
  // Prometheus' service account is bound to a ClusterRole with nonResourceURLs ["/metrics"], verbs ["get"]
  // (the chart's metrics-reader); the namespace's default service account is not.
  api.addToken(PROMETHEUS_TOKEN, {
    username: "system:serviceaccount:monitoring:prometheus",
    groups: ["system:serviceaccounts", "system:serviceaccounts:monitoring", "system:authenticated"],
  });
  api.addToken(OTHER_TOKEN, {
    username: "system:serviceaccount:default:default",
    groups: ["system:serviceaccounts", "system:authenticated"],
  });
  api.allowNonResource("user:system:serviceaccount:monitoring:prometheus", "/metrics", "get");

  const dir = mkdtempSync(join(tmpdir(), "kvpick-chart-"));
  const kubeconfig = join(dir, "kubeconfig");
  writeFileSync(kubeconfig, api.kubeConfig().exportConfig());
  ports = {
    grpc: await freePort(),
    health: await freePort(),
    metrics: await freePort(),
    kv: await freePort(),
  };
  const args = [
    "--pool-name",
    "qwen",
    "--pool-namespace",
    "default",
    "--pool-group",
    "inference.networking.k8s.io",
    "--zap-encoder",
    "json",
    "--config-file",
    join(repoRoot, "test", "fixtures", "chart", "default-plugins.yaml"),
    // inferenceExtension.flags (the chart's default `v: 1` plus this test's ports), keys in template order.
    "--grpc-health-port",
    String(ports.health),
    "--grpc-port",
    String(ports.grpc),
    "--kv-events-endpoint",
    `tcp://127.0.0.1:${ports.kv}`,
    "--metrics-port",
    String(ports.metrics),
    "--v",
    "1",
    "--tracing=false",
  ];
  child = spawn(process.execPath, [join(repoRoot, "dist", "src", "main.js"), ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NAMESPACE: "default", POD_NAME: "qwen-epp-7d9f8-x2x4q", KUBECONFIG: kubeconfig },
  });
  child.stdout!.setEncoding("utf8").on("data", (s: string) => stdout.push(s));
  const stderr: string[] = [];
  child.stderr!.setEncoding("utf8").on("data", (s: string) => stderr.push(s));
  // Generous: starting Node and loading the tokenizer takes seconds of CPU, minutes on a loaded machine.
  const deadline = Date.now() + 100_000;
  while ((await health("inference-extension")) !== "SERVING") {
    if (child.exitCode !== null) throw new Error(`kvpick exited ${child.exitCode}: ${stderr.join("")}`);
    if (Date.now() > deadline) throw new Error(`kvpick never SERVING: ${stderr.join("")}${stdout.join("")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}, 120_000);

afterAll(async () => {
  if (child !== undefined && child.exitCode === null) {
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    await exited;
  }
  await Promise.all((pods ?? []).map((p) => p.close()));
  await api?.stop();
});

describe("kvpick started as the GIE v1.5 chart starts its EPP", () => {
  it("answers the chart's probe services SERVING and unknown services SERVICE_UNKNOWN", async () => {
    for (const service of [
      "inference-extension",
      "liveness",
      "readiness",
      "",
      "envoy.service.ext_proc.v3.ExternalProcessor",
    ])
      expect([service, await health(service)]).toEqual([service, "SERVING"]);
    expect(await health("no-such-service")).toBe("SERVICE_UNKNOWN");
  });

  it("refuses anonymous and unauthorised scrapes of /metrics and serves an allowed service account", async () => {
    const anonymous = await scrape();
    expect(anonymous.status).toBe(401);
    expect(await scrape("not-a-token")).toMatchObject({ status: 401 });
    const forbidden = await scrape(OTHER_TOKEN);
    expect(forbidden.status).toBe(403);
    expect(forbidden.body).toContain("system:serviceaccount:default:default");

    const allowed = await scrape(PROMETHEUS_TOKEN);
    expect(allowed.status).toBe(200);
    expect(allowed.body).toContain("# TYPE");
    // The verdict is cached: a second scrape with the same token costs no review.
    const reviews = api.reviews.length;
    expect((await scrape(PROMETHEUS_TOKEN)).status).toBe(200);
    expect(api.reviews.length).toBe(reviews);
    // The reviews asked what GIE asks: `get` on the non-resource URL /metrics.
    expect(api.reviews.filter((r) => r.kind === "SubjectAccessReview").map((r) => r.user)).toContain(
      "system:serviceaccount:monitoring:prometheus",
    );
    // Probes stay open for the kubelet.
    expect((await fetch(`http://127.0.0.1:${ports.metrics}/readyz`)).status).toBe(200);
  });

  it("routes requests to the pool's pods by their load over ext_proc (TLS)", async () => {
    const client = new EnvoyClient(`127.0.0.1:${ports.grpc}`, { tls: true });
    await client.waitForReady();
    const body = JSON.stringify({ model: "Qwen3-32B", prompt: "Where is Lyon?", max_tokens: 8 });
    const routeOnce = async () => {
      const r = await client.process({ path: "/v1/completions", body });
      expect(r.violations).toEqual([]);
      return r.destination;
    };
    try {
      for (const [busy, idle] of [
        [0, 1],
        [1, 0],
      ] as const) {
        pods[busy]!.load = { waiting: 12, running: 30, kvCacheUsage: 0.95 };
        pods[idle]!.load = { waiting: 0, running: 1, kvCacheUsage: 0.05 };
        const want = pods[idle]!.address;
        // Each pod is scraped on its own 50 ms timer, so for a moment one pod may show its new
        // load and the other its old one (both idle: either may win). Once both scrapes are in,
        // every request goes to the idle pod: wait for four in a row.
        const deadline = Date.now() + 10_000;
        let inARow = 0;
        while (inARow < 4) {
          inARow = (await routeOnce()) === want ? inARow + 1 : 0;
          if (inARow === 0 && Date.now() > deadline) throw new Error(`never settled on ${want}`);
          if (inARow === 0) await new Promise((r) => setTimeout(r, 50));
        }
        for (let i = 0; i < 3; i++) expect(await routeOnce()).toBe(want);
      }
    } finally {
      client.close();
    }
  });

  it("logs once which chart flags it accepted without effect and how /metrics is guarded", () => {
    const lines = stdout
      .join("")
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const started = lines.find((l) => l.msg === "kvpick started");
    expect(started).toMatchObject({ metricsAuth: "kubernetes", poolSource: "--pool-name" });
    // No prompt text and no token in the logs.
    const text = stdout.join("");
    expect(text).not.toContain(PROMETHEUS_TOKEN);
    expect(text).not.toContain("Where is Lyon");
  });
});
