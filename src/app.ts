// The composition root: the one file that imports every module. It builds kvpick from a validated Config,
// wires the pieces, and owns the start and stop order.
import type { Config } from "./config/schema.js";
import { checkStartupConfig, inKubernetes, poolSources } from "./config/startup-checks.js";
import type { KubeConfig } from "@kubernetes/client-node";
import type { EndpointSpec } from "./endpoints/endpoint.js";
import { EndpointStore } from "./endpoints/endpoint-store.js";
import { KubeApi, loadKubeConfig } from "./endpoints/kube-api.js";
import { KubeDiscovery } from "./endpoints/kube-discovery.js";
import { LoadScraper } from "./endpoints/load-scraper.js";
import { metricSpecs } from "./endpoints/vllm-metrics.js";
import { parseEndpointList } from "./endpoints/parse-endpoints.js";
import { createExtProcServer, type ExtProcServer } from "./ext-proc/server.js";
import { ACCURACY_STATES } from "./kv-events/pod-accuracy.js";
import { PoolMembers } from "./kv-events/pool-members.js";
import { SilentPods } from "./kv-events/silent-pods.js";
import { KvEventSubscriber } from "./kv-events/subscriber.js";
import { BlockIndex } from "./kv-index/block-index.js";
import { LearntBlockSize } from "./kv-index/learnt-block-size.js";
import { RequestHasher, requestKeyScheme } from "./kv-index/request-key-scheme.js";
import { type AdminServer, createAdminServer } from "./observability/admin-server.js";
import { chooseMetricsAuth, createMetricsGate } from "./observability/metrics-gate.js";
import type { Logger } from "./observability/logger.js";
import { watchEstimatedFallback, watchIndex } from "./observability/index-metrics.js";
import { Metrics } from "./observability/metrics.js";
import { watchDispatch, watchPool } from "./observability/pool-metrics.js";
import { collectProcessMetrics } from "./observability/process-metrics.js";
import { createTracing } from "./observability/tracing.js";
import { Director, type PromptTokenizer } from "./routing/director.js";
import { FlowController } from "./flow-control/flow-controller.js";
import { ObjectivePriorities } from "./flow-control/objective-priorities.js";
import { ObjectiveWatcher } from "./flow-control/objective-watcher.js";
import { FlowControlMetrics } from "./observability/flow-control-metrics.js";
import { RateLimitedLog } from "./observability/logger.js";
import { LoraAdapters } from "./routing/lora-adapters.js";
import { createScheduler, speculativeLookupFor } from "./scheduling/create-scheduler.js";
import {
  EstimatedPrefixIndex,
  estimatedPrefixParams,
} from "./scheduling/estimated/estimated-prefix-index.js";
import type { PrefixLookup } from "./scheduling/types.js";
import { createRedisSharedIndex, type RedisSharedIndex } from "./shared-index/redis-shared-index.js";
import { TokenizationService } from "./tokenization/tokenization-service.js";

export interface AppOptions {
  config: Config;
  logger: Logger;
  /** Bind address of every listener; "0.0.0.0" in a pod, "127.0.0.1" in tests. */
  host?: string;
  /** Kubernetes credentials for discovery; default: in-cluster, else $KUBECONFIG / ~/.kube/config. */
  kubeConfig?: KubeConfig;
  /** Discovery retry tuning (tests). */
  discoveryBackoffMs?: { initial: number; max: number };
  /** Wraps the prompt tokenizer routing uses (tests: a stand-in that holds requests mid-routing). */
  wrapTokenizer?: (tokenizer: PromptTokenizer) => PromptTokenizer;
}

export interface AppPorts {
  grpcPort: number;
  healthPort: number;
  metricsPort: number;
  /** The bound KV-event address in bind mode (resolved port), else null. */
  kvEventsEndpoint: string | null;
}

export interface App {
  readonly config: Config;
  readonly metrics: Metrics;
  readonly index: BlockIndex;
  readonly endpoints: EndpointStore;
  readonly kvEvents: KvEventSubscriber;
  /** Kubernetes discovery when the pool comes from an InferencePool or a selector, else null. */
  readonly discovery: KubeDiscovery | null;
  /** The shared index in Redis when `index.redis.url` is set, else null. */
  readonly sharedIndex: RedisSharedIndex | null;
  start(): Promise<AppPorts>;
  /** Health → NOT_SERVING, in-flight streams get `graceMs` to finish, then everything closes. */
  stop(graceMs?: number): Promise<void>;
}

/** Connect mode: a data-parallel rank publishes on the pod's KV-event port + rank. */
function kvEventsEndpointOf(e: EndpointSpec, basePort: number): string | undefined {
  if (e.rank === undefined) return undefined; // static endpoint: the subscriber's default (ip:basePort)
  const host = e.ip.includes(":") ? `[${e.ip}]` : e.ip;
  return `tcp://${host}:${basePort + e.rank}`;
}

/** tcp://<ip>:<port> with IPv6 in brackets. */
function tcp(ip: string, port: number): string {
  return `tcp://${ip.includes(":") ? `[${ip}]` : ip}:${port}`;
}

export function createApp(options: AppOptions): App {
  const { config, logger } = options;
  checkStartupConfig(config);
  const host = options.host ?? "0.0.0.0";
  // One API client for discovery and the /metrics reviews, made only when Kubernetes is in play.
  let kubeApi: KubeApi | null = null;
  const kubeApiOf = () => {
    kubeApi ??= new KubeApi(options.kubeConfig ?? loadKubeConfig());
    return kubeApi;
  };
  const metricsAuth = chooseMetricsAuth({
    bearerTokenFile: config.server.metricsBearerTokenFile,
    endpointAuth: config.server.metricsEndpointAuth,
    inKubernetes: inKubernetes(config, options.kubeConfig),
  });
  const metricsGate = createMetricsGate(metricsAuth, {
    bearerTokenFile: config.server.metricsBearerTokenFile,
    logger,
    reviewClient: kubeApiOf,
  });

  // 1. Observability.
  const metrics = new Metrics();
  const tracing = createTracing(config.tracing, process.env, logger);

  // 2. The write path: KV events → index.
  const index = new BlockIndex({
    maxEntries: config.index.maxEntries,
    mediumWeights: config.index.mediumWeights,
  });
  watchIndex(metrics.registry, index);
  // One block size for requests and token keys: tokenizer.blockSize, else the first one a pod reports (its
  // vllm:cache_config_info page or a BlockStored); until then requests are routed on load alone.
  const blockSizes = new LearntBlockSize(
    config.tokenizer.blockSize,
    logger.child({ component: "block-size" }),
  );
  // How scheduling reads the index: a degraded pod's cache credit counts index.degradedCreditFactor (events
  // lost, not recovered). `kvEvents` is read only at request time, after it exists.
  const degradedFactor = config.index.degradedCreditFactor;
  const prefixLookup: PrefixLookup = {
    matchPrefix: (chain, pods) => index.matchPrefix(chain, pods),
    hasPod: (pod) => index.hasPod(pod),
    eventDriven: (pod) => kvEvents.ingest.published(pod),
    creditFactor: (pod) => (kvEvents.ingest.accuracy(pod) === "degraded" ? degradedFactor : 1),
  };
  // Speculative entries (scheduling.speculativeTtlMs): what kvpick just routed counts as cached on that pod
  // until vLLM's events confirm it or the TTL ends. Built here so its size reaches /metrics.
  const speculative = speculativeLookupFor(config.scheduling, prefixLookup);
  if (speculative !== null) metrics.watchSpeculative(speculative);
  // Optional: every change is mirrored to Redis and every request also reads it (README "High availability").
  // Per request the local view (speculation included) is merged with Redis's answer.
  const sharedIndex =
    config.index.redis.url === null
      ? null
      : createRedisSharedIndex({
          config: config.index,
          index,
          local: speculative ?? prefixLookup,
          logger,
          metrics,
        });
  // Bind mode: only pods of the pool may write the index (their topic names a member's ip or ip:port).
  const members = new PoolMembers();
  const endpoints = new EndpointStore({ staleAfterMs: config.endpoints.staleAfterMs, logger });
  watchPool(metrics.registry, endpoints, config.pool.name ?? "static");
  collectProcessMetrics(metrics.registry);
  const replayPort = config.kvEvents.replayPort ?? 0;
  const kvEvents = new KvEventSubscriber({
    config: config.kvEvents,
    hash: { ...config.tokenizer, keys: config.kvEvents.keys, blockSizes },
    index,
    logger,
    metrics,
    mirror: sharedIndex?.mirror,
    ...(config.kvEvents.mode === "bind" && !config.kvEvents.acceptUnknownPods
      ? { admit: (pod: string) => members.has(pod) }
      : {}),
    // vLLM's replay ROUTER listens on replay_endpoint's port + DP rank; only pool members are dialled (a
    // topic is chosen by its sender). A discovered endpoint knows its rank; an "ip" topic names the rank
    // in its batches.
    ...(replayPort > 0
      ? {
          replayEndpoint: (pod: string, rank: number | null) => {
            const e = endpoints.get(pod);
            if (e !== undefined) return tcp(e.ip, replayPort + (e.rank ?? rank ?? 0));
            return members.has(pod) ? tcp(pod, replayPort + (rank ?? 0)) : null;
          },
        }
      : {}),
  });

  // 3. The pool and its load readings. Pods that leave the pool are forgotten by the index.
  const scraper = new LoadScraper(endpoints, {
    intervalMs: config.endpoints.scrapeIntervalMs,
    timeoutMs: config.endpoints.scrapeTimeoutMs,
    path: config.endpoints.metricsPath,
    scheme: config.endpoints.metricsScheme,
    insecureSkipVerify: config.endpoints.metricsInsecureSkipVerify,
    specs: metricSpecs(config.endpoints.metricNames),
    // With token keys (auto/tokens) the pods' hash algo does not matter, only their block size.
    expected: config.kvEvents.keys === "engine" ? { hashAlgo: config.tokenizer.hashAlgo } : {},
    blockSizes,
    logger,
  });
  endpoints.onChange((change) => {
    if (change.kind === "added") members.add(change.endpoint);
    if (change.kind === "removed") members.remove(change.endpoint);
    if (config.kvEvents.mode === "connect") {
      if (change.kind === "added")
        kvEvents.addPod(change.endpoint.address, kvEventsEndpointOf(change.endpoint, config.kvEvents.port));
      if (change.kind === "removed") kvEvents.removePod(change.endpoint.address);
    } else if (change.kind === "added" && replayPort > 0) {
      // Bind mode: a pod joining the pool (or every pod, at startup) may already hold a warm cache that no
      // new event will ever announce. Ask its replay socket for the ring now, under the reference topic's id
      // (the IP; a pod whose topic is "ip:port" is still found by IP). Once per IP (DP ranks share it).
      if (members.onIp(change.endpoint.ip) === 1) kvEvents.ingest.connected(change.endpoint.ip);
    } else if (change.kind === "removed") {
      // Bind mode names pods by topic: "ip" (reference topic) or "ip:port". Another endpoint on the same IP
      // (a data-parallel rank) keeps the IP-named state alive.
      kvEvents.removePod(change.endpoint.address);
      if (members.onIp(change.endpoint.ip) === 0) kvEvents.removePod(change.endpoint.ip);
    }
  });

  const silentPods = new SilentPods({
    members: () => endpoints.specs(),
    podStates: () => kvEvents.podStates(),
    logger: logger.child({ component: "kv-events" }),
  });
  metrics.watchEventSources(silentPods);
  metrics.watchPodAccuracy(silentPods, ACCURACY_STATES);
  let silentTimer: NodeJS.Timeout | null = null;

  // 4. The read path: tokenize → hash → schedule.
  const tokenizer = new TokenizationService({
    config: config.tokenizer,
    logger,
    metrics: metrics.tokenization,
  });
  // kvpick's own key scheme: the pods' when a seed is configured, else a fixed default (token keys).
  const keyScheme = requestKeyScheme(config.tokenizer);
  const hasher = new RequestHasher(keyScheme, blockSizes, config.tokenizer.hashMemoBlocks);
  // The estimated fallback for pods without KV events: built here so its size reaches /metrics.
  const estimatedFallback = new EstimatedPrefixIndex(estimatedPrefixParams.parse({}));
  watchEstimatedFallback(metrics.registry, estimatedFallback);
  const hookLog = new RateLimitedLog(30_000);
  const scheduler = createScheduler(config.scheduling, {
    endpoints,
    prefixLookup,
    blockSize: () => blockSizes.value,
    speculative,
    estimatedFallback,
    onHookError: (source, err) => {
      if (hookLog.admit(source) >= 0)
        logger.error(
          { plugin: source, err: err instanceof Error ? err.message : String(err) },
          "post-pick hook failed",
        );
    },
  });
  if (config.scheduling.dispatchCredit) watchDispatch(metrics.registry, endpoints);
  // Model label values (label-bounds.ts): configured models and adapters, models the pods' KV-event topics
  // name or their load gauges carry (`model_name`), adapters the pods report in vllm:lora_requests_info;
  // every other client-chosen name is "other".
  const loras = new LoraAdapters(config.tokenizer, endpoints);
  metrics.servedModels({
    serves: (model) =>
      Object.hasOwn(config.tokenizer.models, model) ||
      kvEvents.ingest.announcesModel(model) ||
      endpoints.servesModel(model) ||
      loras.resolve(model).adapter != null,
  });
  // Flow control (flowControl.enabled): admission before scheduling; its saturation reading needs the
  // dispatch credit, so the ledger is fed whenever it is on.
  const fc = config.flowControl;
  const objectives = new ObjectivePriorities(fc.objectives);
  const flowControl = fc.enabled
    ? new FlowController({
        settings: fc,
        capacity: { candidates: () => endpoints.candidates() },
        priorityOf: (name) => objectives.priorityOf(name),
        recorder: new FlowControlMetrics(metrics.registry, config.pool.name ?? "static"),
        logger,
      })
    : null;
  const director = new Director({
    tokenizer: options.wrapTokenizer?.(tokenizer) ?? tokenizer,
    hasher,
    scheduler,
    endpoints,
    logger,
    metrics,
    emitEndpointScores: config.server.emitEndpointScores,
    sharedIndex: sharedIndex?.prefixSource ?? null,
    loras,
    dispatch: config.scheduling.dispatchCredit || flowControl !== null ? endpoints : null,
    tracer: tracing.tracer,
    admission: flowControl,
    speculative,
  });

  // Kubernetes discovery writes the store when the pool comes from an InferencePool or a selector.
  const kube = config.pool.name !== null || config.pool.endpointSelector !== null;
  const namespace = config.pool.namespace ?? process.env.NAMESPACE ?? "default";
  const discovery = kube
    ? new KubeDiscovery({
        api: kubeApiOf(),
        store: endpoints,
        logger,
        namespace,
        poolName: config.pool.name,
        poolGroup: config.pool.group,
        selector: config.pool.endpointSelector,
        targetPorts: config.pool.targetPorts,
        ...(options.discoveryBackoffMs === undefined
          ? {}
          : {
              initialBackoffMs: options.discoveryBackoffMs.initial,
              maxBackoffMs: options.discoveryBackoffMs.max,
            }),
      })
    : null;
  // InferenceObjective priorities for flow control (Kubernetes pools only).
  const objectiveWatcher =
    flowControl !== null && kube && fc.watchObjectives
      ? new ObjectiveWatcher({
          api: kubeApiOf(),
          namespace,
          poolName: config.pool.name,
          priorities: objectives,
          logger,
          ...(options.discoveryBackoffMs === undefined
            ? {}
            : {
                initialBackoffMs: options.discoveryBackoffMs.initial,
                maxBackoffMs: options.discoveryBackoffMs.max,
              }),
        })
      : null;

  // 5. Servers. Ready once the pool is known (a static pool is known at start; a discovered one once its pods
  // are listed) and not draining (SIGTERM: /readyz and gRPC health go NOT_SERVING before streams drain).
  let poolSynced = false;
  let draining = false;
  const isReady = () => !draining && (discovery === null ? poolSynced : discovery.synced());
  const extProc: ExtProcServer = createExtProcServer({
    router: director,
    logger,
    host,
    grpcPort: config.server.grpcPort,
    healthPort: config.server.grpcHealthPort,
    secureServing: config.server.secureServing,
    certPath: config.server.certPath,
    maxBodyBytes: config.server.maxBodyBytes,
    isReady,
    metrics: metrics.extProc,
  });
  const admin: AdminServer = createAdminServer({
    registry: metrics.registry,
    port: config.server.metricsPort,
    host,
    logger,
    isReady,
    metricsGate,
  });

  /** Every configured tokenizer and the default one, loaded before serving; failures are logged, not fatal. */
  const warmTokenizers = async () => {
    for (const model of ["", ...Object.keys(config.tokenizer.models)]) {
      try {
        const dir = await tokenizer.warm(model);
        logger.info({ model: model || "(default)", tokenizerDir: dir }, "tokenizer loaded");
      } catch (err) {
        logger.error(
          { model: model || "(default)", err: err instanceof Error ? err.message : String(err) },
          "tokenizer failed to load: its requests will be routed on load alone",
        );
      }
    }
  };

  return {
    config,
    metrics,
    index,
    endpoints,
    kvEvents,
    discovery,
    sharedIndex,
    async start() {
      sharedIndex?.start();
      await kvEvents.start();
      if (discovery !== null)
        discovery.start(); // readiness follows its sync; never blocks startup
      else endpoints.replaceAll(parseEndpointList(config.pool.endpoints));
      objectiveWatcher?.start();
      scraper.start();
      silentTimer = setInterval(() => silentPods.check(), 10_000).unref();
      poolSynced = true;
      await warmTokenizers();
      const metricsPort = await admin.start();
      const { grpcPort, healthPort } = await extProc.start();
      const ports = { grpcPort, healthPort, metricsPort, kvEventsEndpoint: kvEvents.endpoint };
      logger.info(
        {
          ...ports,
          secureServing: config.server.secureServing,
          endpoints: endpoints.size,
          poolSource: poolSources(config)[0] ?? "none",
          kvEventsMode: config.kvEvents.mode,
          blockSize: config.tokenizer.blockSize ?? "learnt from the pods",
          hashAlgo: config.tokenizer.hashAlgo,
          hashSeed: config.tokenizer.hashSeed,
          metricsAuth,
        },
        "kvpick started",
      );
      if (metricsAuth === "open")
        logger.info(
          { metricsPort },
          config.server.metricsEndpointAuth
            ? "/metrics is open: no Kubernetes credentials (metrics endpoint auth needs the Kubernetes API; or set server.metricsBearerTokenFile)"
            : "/metrics is open: metrics endpoint auth turned off",
        );
      return ports;
    },
    async stop(graceMs = 0) {
      if (silentTimer !== null) clearInterval(silentTimer);
      draining = true;
      flowControl?.stop(); // queued requests get 503 at once instead of waiting out the drain
      await extProc.stop(graceMs);
      await Promise.allSettled([
        admin.stop(),
        scraper.stop(),
        kvEvents.close(),
        tokenizer.stop(),
        discovery?.stop(),
        objectiveWatcher?.stop(),
      ]);
      await sharedIndex?.close(); // after the subscriber: its last changes are flushed first
      await tracing.stop(); // last: spans of the drained requests are flushed
    },
  };
}
