// Starts the ext_proc server on 127.0.0.1 (ports 0) with a fake Router and an Envoy-behaving client, for
// the ext-proc tests, on the main thread or on its serving thread (`thread: true`, server.grpcThread): the
// tests run in both modes (SERVING_MODES). Logs are captured so tests can check that no body text is logged.
import * as grpc from "@grpc/grpc-js";
import { HEALTH_SERVICE, loadProtos, serviceOf } from "../../src/ext-proc/protos.js";
import { createLogger } from "../../src/observability/logger.js";
import { Metrics } from "../../src/observability/metrics.js";
import type { RouteOutcome, Router, RouteRequest } from "../../src/ext-proc/router.js";
import { createExtProcServer, type ExtProcServer } from "../../src/ext-proc/server.js";
import { createThreadedExtProcServer } from "../../src/app/grpc-thread.js";
import { EnvoyClient } from "./envoy-client.js";

export const ENDPOINT = "10.0.0.5:8000";

export const chat = (content: string) =>
  Buffer.from(JSON.stringify({ model: "qwen3", messages: [{ role: "user", content }] }), "utf8");

export class FakeRouter implements Router {
  calls: RouteRequest[] = [];
  handler: (r: RouteRequest) => Promise<RouteOutcome> | RouteOutcome = () => ({
    kind: "routed",
    endpoint: ENDPOINT,
  });
  async route(r: RouteRequest): Promise<RouteOutcome> {
    this.calls.push(r);
    return this.handler(r);
  }
}

/** Both ways of serving ext_proc, for `describe.each`: on the main thread, and on its own thread. */
/** One gRPC health Check on `port` (both ports serve it); a 2 s deadline, so a dead server rejects. */
export const healthCheck = (port: number, service: string) =>
  new Promise<string>((resolve, reject) => {
    const Health = serviceOf(loadProtos(), HEALTH_SERVICE);
    const client = new Health(
      `127.0.0.1:${port}`,
      grpc.credentials.createInsecure(),
    ) as unknown as grpc.Client & {
      Check(
        req: object,
        o: { deadline: number },
        cb: (err: Error | null, res?: { status: string }) => void,
      ): void;
    };
    client.Check({ service }, { deadline: Date.now() + 2_000 }, (err, res) => {
      client.close();
      err ? reject(err) : resolve(res!.status);
    });
  });

export const SERVING_MODES = [
  { mode: "main thread", thread: false },
  { mode: "serving thread", thread: true },
] as const;

export interface Harness {
  router: FakeRouter;
  server: ExtProcServer;
  client: EnvoyClient;
  logs: string[];
  metrics: Metrics;
  ports: { grpcPort: number; healthPort: number };
  stop(): Promise<void>;
}

export async function startHarness(
  opts: {
    secure?: boolean;
    maxBodyBytes?: number;
    certPath?: string;
    isReady?: () => boolean;
    thread?: boolean;
  } = {},
): Promise<Harness> {
  const router = new FakeRouter();
  const logs: string[] = [];
  const logger = createLogger({ level: "debug", destination: { write: (s: string) => void logs.push(s) } });
  const metrics = new Metrics();
  const options = {
    router,
    logger,
    grpcPort: 0,
    healthPort: 0,
    host: "127.0.0.1",
    secureServing: opts.secure ?? false,
    certPath: opts.certPath ?? null,
    maxBodyBytes: opts.maxBodyBytes ?? 4 * 1024 * 1024,
    isReady: opts.isReady ?? (() => true),
    metrics: metrics.extProc,
  };
  const server = opts.thread === true ? createThreadedExtProcServer(options) : createExtProcServer(options);
  const ports = await server.start();
  const client = new EnvoyClient(`127.0.0.1:${ports.grpcPort}`, { tls: opts.secure ?? false });
  await client.waitForReady();
  return {
    router,
    server,
    client,
    logs,
    metrics,
    ports,
    async stop() {
      client.close();
      await server.stop(1_000);
    },
  };
}
