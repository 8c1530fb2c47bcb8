// The composition root: builds kvpick from a validated Config and only wires. Each numbered section is
// built by a helper in app/ (construction from configuration, no behaviour); every long-lived component is a
// Service in one list, started in order and stopped in reverse by the ServiceGroup.
import type { App, AppOptions, AppPorts } from "./app/app-contract.js";
import { setupCache } from "./app/setup-cache.js";
import { setupObjectiveWatcher, setupPool } from "./app/setup-pool.js";
import { setupRouting } from "./app/setup-routing.js";
import { setupServers } from "./app/setup-servers.js";
import { logStarted } from "./app/startup-log.js";
import { checkStartupConfig, inKubernetes } from "./config/startup-checks.js";
import { KubeApi, loadKubeConfig } from "./endpoints/kube-api.js";
import { LearntBlockSize } from "./kv-index/learnt-block-size.js";
import { chooseMetricsAuth } from "./observability/metrics-gate.js";
import { Metrics } from "./observability/metrics.js";
import { collectProcessMetrics } from "./observability/process-metrics.js";
import { watchPool } from "./observability/pool-metrics.js";
import { createTracing } from "./observability/tracing.js";
import { type Service, ServiceGroup } from "./service-group.js";

export type { App, AppOptions, AppPorts };

export function createApp(options: AppOptions): App {
  const { config, logger } = options;
  checkStartupConfig(config);
  const host = options.host ?? "0.0.0.0";
  let kubeApi: KubeApi | null = null; // one API client, made only when Kubernetes is in play
  const kubeApiOf = () => (kubeApi ??= new KubeApi(options.kubeConfig ?? loadKubeConfig()));
  const backoffMs = options.discoveryBackoffMs;

  // 1. Observability.
  const metrics = new Metrics();
  collectProcessMetrics(metrics.registry);
  const tracing = createTracing(config.tracing, process.env, logger);
  const metricsAuth = chooseMetricsAuth({
    bearerTokenFile: config.server.metricsBearerTokenFile,
    endpointAuth: config.server.metricsEndpointAuth,
    inKubernetes: inKubernetes(config, options.kubeConfig),
  });

  // 2. The pool: endpoints, their load readings, and the block size the pods report (when not configured).
  const blockSizes = new LearntBlockSize(
    config.tokenizer.blockSize,
    logger.child({ component: "block-size" }),
  );
  const pool = setupPool(config, { logger, kubeApi: kubeApiOf, blockSizes, backoffMs });
  watchPool(metrics.registry, pool.endpoints, config.pool.name ?? "static");

  // 3. The cache: KV events → index (+ Redis), and the read model scheduling sees.
  const cache = setupCache(config, { logger, metrics, endpoints: pool.endpoints, blockSizes });

  // 4. The read path: tokenize → hash → flow control → schedule, in the Director.
  const routing = setupRouting(config, {
    logger,
    metrics,
    endpoints: pool.endpoints,
    cacheView: cache.view,
    blockSizes,
    tracer: tracing.tracer,
    announcesModel: (model) => cache.kvEvents.announcesModel(model),
    wrapTokenizer: options.wrapTokenizer,
  });
  const objectiveWatcher = setupObjectiveWatcher(config, {
    logger,
    kubeApi: kubeApiOf,
    priorities: routing.priorities,
    backoffMs,
  });

  // 5. Servers. Ready once serving with the pool known (a discovered pool once its pods are listed), and not
  // draining: on stop, /readyz and gRPC health go NOT_SERVING before the streams drain.
  let serving = false;
  const isReady = () => serving && pool.synced();
  const ports: AppPorts = { grpcPort: 0, healthPort: 0, metricsPort: 0, kvEventsEndpoint: null };
  const { extProc, admin } = setupServers(config, {
    logger,
    host,
    metrics,
    router: routing.director,
    isReady,
    metricsAuth,
    kubeApi: kubeApiOf,
    ports,
  });

  // 6. Lifecycle: started in this order, stopped in reverse (readiness first, tracing last).
  const readiness: Service = {
    name: "readiness",
    start() {
      serving = true;
      return undefined;
    },
    stop() {
      serving = false;
      routing.flowControl?.stop(); // queued requests get 503 at once instead of waiting out the drain
      return undefined;
    },
  };
  const services = new ServiceGroup(
    [
      tracing,
      ...(cache.sharedIndex === null ? [] : [cache.sharedIndex]), // stopped after the subscriber: flushed last
      cache.kvEvents, // before the pool fills: it follows every join
      pool.source,
      ...(objectiveWatcher === null ? [] : [objectiveWatcher]),
      pool.scraper,
      routing.tokenizer, // loads every configured tokenizer before serving
      admin,
      extProc,
      readiness,
    ],
    logger,
  );

  return {
    config,
    metrics,
    index: cache.index,
    endpoints: pool.endpoints,
    kvEvents: cache.kvEvents,
    discovery: pool.discovery,
    sharedIndex: cache.sharedIndex,
    async start() {
      await services.start();
      ports.kvEventsEndpoint = cache.kvEvents.endpoint;
      logStarted(logger, config, { ports, endpoints: pool.endpoints.size, metricsAuth });
      return { ...ports };
    },
    stop: (graceMs = 0) => services.stop(graceMs),
  };
}
