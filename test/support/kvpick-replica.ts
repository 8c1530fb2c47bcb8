// One kvpick replica in-process (createApp, as `kvpick serve` builds it) on loopback port 0, with an
// Envoy-behaving ext_proc client and its JSON log lines, for multi-replica tests.
import { type App, createApp } from "../../src/app.js";
import { parseConfig } from "../../src/config/load.js";
import type { ConfigInput } from "../../src/config/schema.js";
import { createLogger } from "../../src/observability/logger.js";
import { EnvoyClient } from "./envoy-client.js";
import type { FakeVllmPod } from "./fake-vllm-pod.js";
import { until } from "./until.js";

export interface Replica {
  app: App;
  client: EnvoyClient;
  logs: Record<string, unknown>[];
  ports: Awaited<ReturnType<App["start"]>>;
  /** Routes one chat request; returns the destination kvpick chose. */
  route(body: unknown, requestId?: string): Promise<string | null>;
  /** Waits until every pod's latest load page has been scraped (after changing `pod.load`). */
  freshLoads(pods: FakeVllmPod[]): Promise<void>;
  stop(): Promise<void>;
}

export async function startReplica(pods: FakeVllmPod[], extra: ConfigInput = {}): Promise<Replica> {
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: "info",
    destination: { write: (s: string) => void logs.push(JSON.parse(s)) },
  });
  const config = parseConfig({
    ...extra,
    tokenizer: { hashSeed: "42", ...extra.tokenizer },
    kvEvents: { endpoint: "tcp://127.0.0.1:*", ...extra.kvEvents },
    server: { grpcPort: 0, grpcHealthPort: 0, metricsPort: 0, secureServing: false },
    pool: { endpoints: pods.map((p) => p.address) },
  });
  const app = createApp({ config, logger, host: "127.0.0.1" });
  const ports = await app.start();
  const client = new EnvoyClient(`127.0.0.1:${ports.grpcPort}`);
  await client.waitForReady();
  const replica: Replica = {
    app,
    client,
    logs,
    ports,
    async route(body, requestId) {
      const r = await client.process({
        path: "/v1/chat/completions",
        body: Buffer.from(JSON.stringify(body)),
        ...(requestId === undefined ? {} : { headers: { "x-request-id": requestId } }),
      });
      if (r.violations.length > 0) throw new Error(`ext_proc violations: ${r.violations.join("; ")}`);
      return r.destination;
    },
    async freshLoads(list) {
      await until(
        () =>
          list.every((p) => {
            const m = app.endpoints.get(p.address)?.metrics;
            return m?.waiting === p.load.waiting && m.running === p.load.running;
          }),
        "scrape of the new loads",
      );
    },
    async stop() {
      client.close();
      await app.stop();
    },
  };
  await until(() => app.endpoints.candidates().every((e) => e.metricsState === "fresh"), "first scrapes");
  return replica;
}
