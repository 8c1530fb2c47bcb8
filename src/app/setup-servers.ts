// Composition-root section "servers": the ext_proc gRPC server (with gRPC health) that Envoy calls, on the
// main thread or on a serving thread of its own (server.grpcThread, grpc-thread.ts), and the admin HTTP
// server (/metrics behind its gate, /healthz, /readyz). Both are Services that record the ports they bound in
// `ports`.
import type { Config } from "../config/schema.js";
import type { KubeApi } from "../endpoints/kube-api.js";
import type { Router } from "../ext-proc/router.js";
import { createExtProcServer, type ExtProcServerOptions } from "../ext-proc/server.js";
import { createAdminServer } from "../observability/admin-server.js";
import type { Logger } from "../observability/logger.js";
import { createMetricsGate, type MetricsAuthMode } from "../observability/metrics-gate.js";
import type { Metrics } from "../observability/metrics.js";
import type { Service } from "../service-group.js";
import { createThreadedExtProcServer } from "./grpc-thread.js";

export interface BoundPorts {
  grpcPort: number;
  healthPort: number;
  metricsPort: number;
}

export function setupServers(
  config: Config,
  o: {
    logger: Logger;
    host: string;
    metrics: Metrics;
    router: Router;
    isReady: () => boolean;
    metricsAuth: MetricsAuthMode;
    kubeApi: () => KubeApi;
    /** Filled in as each server binds. */
    ports: BoundPorts;
  },
): { extProc: Service; admin: Service } {
  const serverOptions: ExtProcServerOptions = {
    router: o.router,
    logger: o.logger,
    host: o.host,
    grpcPort: config.server.grpcPort,
    healthPort: config.server.grpcHealthPort,
    secureServing: config.server.secureServing,
    certPath: config.server.certPath,
    maxBodyBytes: config.server.maxBodyBytes,
    isReady: o.isReady,
    metrics: o.metrics.extProc,
  };
  const threaded = config.server.grpcThread ? createThreadedExtProcServer(serverOptions) : null;
  const extProc = threaded ?? createExtProcServer(serverOptions);
  // /readyz also says no while the serving thread is down (its gRPC health is gone with it).
  const isReady = threaded === null ? o.isReady : () => o.isReady() && threaded.serving();
  const admin = createAdminServer({
    registry: o.metrics.registry,
    port: config.server.metricsPort,
    host: o.host,
    logger: o.logger,
    isReady,
    metricsGate: createMetricsGate(o.metricsAuth, {
      bearerTokenFile: config.server.metricsBearerTokenFile,
      logger: o.logger,
      reviewClient: o.kubeApi,
    }),
  });
  return {
    extProc: {
      name: "ext-proc",
      start: async () => void Object.assign(o.ports, await extProc.start()),
      stop: (graceMs) => extProc.stop(graceMs),
    },
    admin: {
      name: "admin",
      start: async () => {
        o.ports.metricsPort = await admin.start();
      },
      stop: (graceMs) => admin.stop(graceMs),
    },
  };
}
