// The local demo stack in one process: kvpick (createApp: plaintext, hash seed 42, KV events bound on
// loopback), N simulated vLLM pods dialling kvpick's SUB, and the Envoy stand-in in front. Used by
// `kvpick demo` and by the end-to-end test.
import { type App, type AppPorts, createApp } from "../app.js";
import { parseConfig } from "../config/load.js";
import { parseEndpointList } from "../endpoints/parse-endpoints.js";
import type { Logger } from "../observability/logger.js";
import type { SimSettings } from "../sim/start-sim.js";
import { startSim } from "../sim/start-sim.js";
import type { SimCluster } from "../sim/sim-cluster.js";
import type { TokenizationService } from "../tokenization/tokenization-service.js";
import { EnvoyFront } from "./envoy-front.js";

export interface DemoStackOptions {
  sim: SimSettings;
  /** Front HTTP port (8080 in the demo, 0 in tests). */
  frontPort: number;
  /** kvpick's KV-event SUB port on 127.0.0.1 (0 = free). */
  kvEventsPort: number;
  logger: Logger;
  /** kvpick's scrape interval of the pods' /metrics. */
  scrapeIntervalMs?: number;
}

export interface DemoStack {
  app: App;
  ports: AppPorts;
  cluster: SimCluster;
  front: EnvoyFront;
  close(): Promise<void>;
}

export async function startDemoStack(o: DemoStackOptions): Promise<DemoStack> {
  const config = parseConfig({
    tokenizer: { hashSeed: o.sim.hashSeed, hashAlgo: o.sim.hashAlgo, blockSize: o.sim.engine.blockSize },
    kvEvents: {
      mode: "bind",
      endpoint: `tcp://127.0.0.1:${o.kvEventsPort === 0 ? "*" : o.kvEventsPort}`,
      // The pods' replay sockets (--kv-events-replay-port; kvpick dials <pod ip>:<port>, loopback addressing).
      replayPort: o.sim.replay?.port ?? null,
    },
    server: { grpcPort: 0, grpcHealthPort: 0, metricsPort: 0, secureServing: false },
    endpoints: { scrapeIntervalMs: o.scrapeIntervalMs ?? 50 },
  });
  const app = createApp({ config, logger: o.logger, host: "127.0.0.1" });
  const ports = await app.start();
  let cluster: SimCluster | null = null;
  let tokenizer: TokenizationService | null = null;
  let front: EnvoyFront | null = null;
  try {
    const started = await startSim(
      { ...o.sim, kvEvents: { mode: "connect", endpoint: ports.kvEventsEndpoint! } },
      o.logger,
    );
    cluster = started.cluster;
    tokenizer = started.tokenizer;
    // The pool is known only now (pods may take free ports): hand it to kvpick as a static pool.
    app.endpoints.replaceAll(parseEndpointList(cluster.pods.map((p) => p.address)));
    front = new EnvoyFront({
      extProcAddress: `127.0.0.1:${ports.grpcPort}`,
      port: o.frontPort,
      logger: o.logger,
    });
    await front.start();
  } catch (err) {
    await front?.close();
    await cluster?.close();
    await tokenizer?.stop();
    await app.stop();
    throw err;
  }
  const c = cluster;
  const t = tokenizer;
  const f = front;
  return {
    app,
    ports,
    cluster: c,
    front: f,
    async close() {
      await f.close();
      await c.close();
      await t.stop();
      await app.stop();
    },
  };
}
