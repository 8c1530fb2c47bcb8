// The startup lines operators grep for ("kvpick started", whether /metrics is open): what was bound and
// how the cache signal is configured, never secrets.
import type { Config } from "../config/schema.js";
import { poolSources } from "../config/startup-checks.js";
import type { Logger } from "../observability/logger.js";
import type { MetricsAuthMode } from "../observability/metrics-gate.js";

export function logStarted(
  logger: Logger,
  config: Config,
  facts: {
    ports: { grpcPort: number; healthPort: number; metricsPort: number; kvEventsEndpoint: string | null };
    endpoints: number;
    metricsAuth: MetricsAuthMode;
  },
): void {
  logger.info(
    {
      ...facts.ports,
      secureServing: config.server.secureServing,
      endpoints: facts.endpoints,
      poolSource: poolSources(config)[0] ?? "none",
      kvEventsMode: config.kvEvents.mode,
      blockSize: config.tokenizer.blockSize ?? "learnt from the pods",
      hashAlgo: config.tokenizer.hashAlgo,
      hashSeed: config.tokenizer.hashSeed,
      metricsAuth: facts.metricsAuth,
    },
    "kvpick started",
  );
  if (facts.metricsAuth === "open")
    logger.info(
      { metricsPort: facts.ports.metricsPort },
      config.server.metricsEndpointAuth
        ? "/metrics is open: no Kubernetes credentials (metrics endpoint auth needs the Kubernetes API; or set server.metricsBearerTokenFile)"
        : "/metrics is open: metrics endpoint auth turned off",
    );
}
