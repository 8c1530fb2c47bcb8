// kvpick (createApp, in process) in front of simulated vLLM pods that publish real KV events to it, driven
// through the Envoy stand-in: the stack the observability tests measure (/metrics, traces). Like the demo
// stack, but the caller supplies configuration (e.g. `tracing`).
import { type App, type AppPorts, createApp } from "../../src/app.js";
import { simSettings } from "../../src/cli/sim-command.js";
import { startSim } from "../../src/sim/start-sim.js";
import type { ConfigInput } from "../../src/config/schema.js";
import { parseConfig } from "../../src/config/load.js";
import { EnvoyFront } from "../../src/demo/envoy-front.js";
import { parseEndpointList } from "../../src/endpoints/parse-endpoints.js";
import type { Logger } from "../../src/observability/logger.js";
import type { SimCluster } from "../../src/sim/sim-cluster.js";
import { until } from "./until.js";

export interface ObservedStack {
  app: App;
  ports: AppPorts;
  cluster: SimCluster;
  /** Base URL of the Envoy stand-in (OpenAI API). */
  base: string;
  close(): Promise<void>;
}

export async function startObservedStack(o: {
  pods: number;
  logger: Logger;
  config?: ConfigInput;
}): Promise<ObservedStack> {
  const sim = simSettings({ pods: o.pods, "base-port": 0, "time-scale": "200", "ip-mode": "auto" });
  const config = parseConfig({
    ...o.config,
    tokenizer: { hashSeed: sim.hashSeed, hashAlgo: sim.hashAlgo, blockSize: sim.engine.blockSize },
    kvEvents: { mode: "bind", endpoint: "tcp://127.0.0.1:*" },
    server: { ...o.config?.server, grpcPort: 0, grpcHealthPort: 0, metricsPort: 0, secureServing: false },
    endpoints: { scrapeIntervalMs: 50 },
  });
  const app = createApp({ config, logger: o.logger, host: "127.0.0.1" });
  const ports = await app.start();
  const { cluster, tokenizer } = await startSim(
    { ...sim, kvEvents: { mode: "connect", endpoint: ports.kvEventsEndpoint! } },
    o.logger,
  );
  app.endpoints.replaceAll(parseEndpointList(cluster.pods.map((p) => p.address)));
  const front = new EnvoyFront({ extProcAddress: `127.0.0.1:${ports.grpcPort}`, port: 0, logger: o.logger });
  await front.start();
  await until(
    () => app.endpoints.candidates().every((e) => e.metricsState === "fresh"),
    "first scrape of every pod",
  );
  return {
    app,
    ports,
    cluster,
    base: `http://127.0.0.1:${front.port}`,
    async close() {
      await front.close();
      await cluster.close();
      await tokenizer.stop();
      await app.stop();
    },
  };
}

/** A chat request sharing a long system prompt (≈ 20 blocks), so routing has a cache signal. */
export function chat(question: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const system =
    "You are the support assistant of Example Corp. " +
    Array.from(
      { length: 80 },
      (_, i) => `Rule ${i}: refunds within ${i + 3} days need receipt ${i * 7}.`,
    ).join(" ");
  return {
    model: "Qwen3-32B",
    max_tokens: 8,
    messages: [
      { role: "system", content: system },
      { role: "user", content: question },
    ],
    ...extra,
  };
}

export async function post(
  base: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string }> {
  const r = await fetch(`${base}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: r.status, text: await r.text() };
}
