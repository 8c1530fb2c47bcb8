// The ext_proc gRPC server (Envoy → kvpick, one stream per HTTP request) and the plaintext gRPC health
// server on its own port (GIE: 9002 / 9003). The health service is also served on the ext_proc port, as
// GIE's --health-checking does, because GIE's Envoy config health-checks the EPP cluster there.
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../observability/logger.js";
import type { Service } from "../service-group.js";
import { healthImplementation } from "./health.js";
import { type BodySendMode, EXT_PROC_SERVICE, HEALTH_SERVICE, loadProtos, serviceOf } from "./protos.js";
import type { Router } from "./router.js";
import { type ExtProcCall, ExtProcStream } from "./stream.js";
import { serverCredentials } from "./tls.js";

export interface ExtProcServerOptions {
  router: Router;
  logger: Logger;
  /** 0 = any free port (start() reports the bound one). */
  grpcPort: number;
  healthPort: number;
  /** Bind address; "0.0.0.0" in a pod, "127.0.0.1" in tests. */
  host?: string;
  secureServing: boolean;
  certPath?: string | null;
  /** Request bodies above this are answered 413. */
  maxBodyBytes: number;
  /**
   * Readiness for health checks (e.g. endpoints known); draining after stop() starts is added here. A promise
   * when readiness is asked across threads (the serving thread asks the main thread).
   */
  isReady(): boolean | Promise<boolean>;
  /** When given, ext_proc records request outcomes, in-flight requests and stream counts. */
  metrics?: ExtProcRecorder;
  /** Body modes assumed when Envoy sends no protocol_config (< 1.34); default FULL_DUPLEX_STREAMED. */
  defaultRequestBodyMode?: BodySendMode;
  defaultResponseBodyMode?: BodySendMode;
}

/** What the server reports (observability/ext-proc-metrics.ts implements it). */
export interface ExtProcRecorder {
  /** Envoy opened / closed one ext_proc stream (one per HTTP request). */
  streamOpened(): void;
  streamClosed(): void;
  /** A request was answered: 200 = routed, else the ImmediateResponse status. */
  answered(status: number): void;
  /** A routed request's response finished. */
  responseDone(): void;
}

export interface ExtProcServer extends Service {
  start(): Promise<{ grpcPort: number; healthPort: number }>;
  /** Readiness → NOT_SERVING, then waits up to `graceMs` (default 5 s) for streams to finish before cutting them. */
  stop(graceMs?: number): Promise<void>;
  /** Open ext_proc streams. */
  inFlight(): number;
}

export function createExtProcServer(options: ExtProcServerOptions): ExtProcServer {
  const logger = options.logger.child({ component: "ext-proc" });
  const pkg = loadProtos();
  const host = options.host ?? "0.0.0.0";
  let draining = false;
  let open = 0;
  const isReady = () => !draining && options.isReady();
  const metrics = options.metrics;

  // A BUFFERED body arrives as one message: allow it past grpc-js' 4 MiB default so it gets a 413, not a
  // gRPC error (which Envoy turns into a 500).
  const maxMessage = Math.min(2 ** 31 - 1, Math.max(4 * 1024 * 1024, options.maxBodyBytes * 2 + 1024 * 1024));
  const grpcServer = new grpc.Server({
    "grpc.max_receive_message_length": maxMessage,
    "grpc.max_send_message_length": maxMessage,
  });
  const healthServer = new grpc.Server();
  const health = healthImplementation(isReady);
  healthServer.addService(serviceOf(pkg, HEALTH_SERVICE).service, health);
  grpcServer.addService(serviceOf(pkg, HEALTH_SERVICE).service, health);
  grpcServer.addService(serviceOf(pkg, EXT_PROC_SERVICE).service, {
    Process(call: ExtProcCall) {
      open++;
      metrics?.streamOpened();
      new ExtProcStream(call, {
        router: options.router,
        logger,
        maxBodyBytes: options.maxBodyBytes,
        defaultRequestBodyMode: options.defaultRequestBodyMode ?? "FULL_DUPLEX_STREAMED",
        defaultResponseBodyMode: options.defaultResponseBodyMode ?? "FULL_DUPLEX_STREAMED",
        onOutcome(status) {
          metrics?.answered(status);
        },
        onRequestDone() {
          metrics?.responseDone();
        },
        onClose() {
          open--;
          metrics?.streamClosed();
        },
      });
    },
  });

  const bind = (server: grpc.Server, port: number, creds: grpc.ServerCredentials) =>
    new Promise<number>((resolve, reject) => {
      const address = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
      server.bindAsync(address, creds, (err, bound) => (err ? reject(err) : resolve(bound)));
    });

  const shutdownOne = (server: grpc.Server, graceMs: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        server.forceShutdown(); // Envoy's streams live as long as generation: do not wait forever
        resolve();
      }, graceMs);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });

  return {
    name: "ext-proc",
    async start() {
      const creds = await serverCredentials({
        secureServing: options.secureServing,
        certPath: options.certPath,
      });
      const grpcPort = await bind(grpcServer, options.grpcPort, creds);
      const healthPort = await bind(
        healthServer,
        options.healthPort,
        grpc.ServerCredentials.createInsecure(),
      );
      logger.info({ grpcPort, healthPort, tls: options.secureServing }, "ext_proc server listening");
      return { grpcPort, healthPort };
    },
    async stop(graceMs = 5_000) {
      draining = true;
      await shutdownOne(grpcServer, graceMs);
      healthServer.forceShutdown();
      logger.info("ext_proc server stopped");
    },
    inFlight: () => open,
  };
}
