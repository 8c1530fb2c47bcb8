// `--emit-endpoint-scores`: the flag reaches the config, and kvpick then puts every candidate's scores in the
// response metadata `envoy.lb` / `x-gateway-destination-endpoint-scores` (off by default: only the destination).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EnvoyClient } from "../../test/support/envoy-client.js";
import { FakeVllmPod } from "../../test/support/fake-vllm-pod.js";
import { until } from "../../test/support/until.js";
import { type App, createApp } from "../app.js";
import { createLogger } from "../observability/logger.js";
import { configFromArgs } from "./serve-command.js";

describe("--emit-endpoint-scores", () => {
  const pods: FakeVllmPod[] = [];
  let app: App;
  let client: EnvoyClient;

  beforeAll(async () => {
    for (const ip of ["127.0.0.21", "127.0.0.22"]) pods.push(await new FakeVllmPod(ip).start());
    const { config } = configFromArgs([
      "--endpoints",
      pods.map((p) => p.address).join(","),
      "--hash-seed=42",
      "--grpc-port=0",
      "--grpc-health-port=0",
      "--metrics-port=0",
      "--secure-serving=false",
      "--kv-events-endpoint=tcp://127.0.0.1:*",
      "--emit-endpoint-scores",
    ]);
    expect(config.server.emitEndpointScores).toBe(true);
    app = createApp({ config, logger: createLogger({ level: "silent" }), host: "127.0.0.1" });
    const ports = await app.start();
    client = new EnvoyClient(`127.0.0.1:${ports.grpcPort}`, { tls: false });
    await client.waitForReady();
    await until(() => app.endpoints.candidates().every((e) => e.metricsState === "fresh"), "first scrapes");
  });

  afterAll(async () => {
    client?.close();
    await app?.stop();
    for (const p of pods) await p.close();
  });

  it("is off unless asked for", () => {
    expect(configFromArgs(["--endpoints", "127.0.0.1:1"]).config.server.emitEndpointScores).toBe(false);
  });

  it("puts every candidate's scores in envoy.lb metadata", async () => {
    const body = Buffer.from(JSON.stringify({ model: "m", messages: [{ role: "user", content: "hello" }] }));
    const r = await client.process({ path: "/v1/chat/completions", body });
    expect(r.violations).toEqual([]);
    const lb = r.dynamicMetadata["envoy.lb"] as Record<string, unknown>;
    expect(lb["x-gateway-destination-endpoint"]).toBe(r.destination);
    const scores = lb["x-gateway-destination-endpoint-scores"] as Record<string, unknown>;
    expect(Object.keys(scores).sort()).toEqual(pods.map((p) => p.address).sort());
  });
});
