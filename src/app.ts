// The composition root: the one file that imports every module. It builds kvpick from a validated Config,
// wires the pieces, and owns the start and stop order.
import type { Config } from "./config/schema.js";
import { EndpointStore } from "./endpoints/endpoint-store.js";
import { LoadScraper } from "./endpoints/load-scraper.js";
import { parseEndpointList } from "./endpoints/parse-endpoints.js";
import { ConfigError } from "./errors.js";
import { createExtProcServer, type ExtProcServer } from "./ext-proc/server.js";
import { KvEventSubscriber } from "./kv-events/subscriber.js";
import { BlockHasher } from "./kv-index/block-hash.js";
import { BlockIndex } from "./kv-index/block-index.js";
import { type AdminServer, createAdminServer } from "./observability/admin-server.js";
import type { Logger } from "./observability/logger.js";
import { Metrics } from "./observability/metrics.js";
import { Director } from "./routing/director.js";
import { createScheduler } from "./scheduling/create-scheduler.js";
import { TokenizationService } from "./tokenization/tokenization-service.js";

export interface AppOptions {
  config: Config;
  logger: Logger;
  /** Bind address of every listener; "0.0.0.0" in a pod, "127.0.0.1" in tests. */
  host?: string;
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
  start(): Promise<AppPorts>;
  /** Health → NOT_SERVING, in-flight streams get `graceMs` to finish, then everything closes. */
  stop(graceMs?: number): Promise<void>;
}

/** Refuses configurations that would silently give a 0 % hit rate. */
export function checkStartupConfig(config: Config): void {
  if (config.tokenizer.hashSeed === null) {
    throw new ConfigError([
      "tokenizer.hashSeed (--hash-seed): required: set it to the vLLM pods' PYTHONHASHSEED (e.g. 42). " +
        "There is no safe default: with another seed no block hash ever matches.",
    ]);
  }
}

export function createApp(options: AppOptions): App {
  const { config, logger } = options;
  checkStartupConfig(config);
  const host = options.host ?? "0.0.0.0";

  // 1. Observability.
  const metrics = new Metrics();

  // 2. The write path: KV events → index.
  const index = new BlockIndex({
    maxEntries: config.index.maxEntries,
    mediumWeights: config.index.mediumWeights,
  });
  metrics.watchIndex(index);
  const kvEvents = new KvEventSubscriber({
    config: config.kvEvents,
    hash: config.tokenizer,
    index,
    logger,
    metrics,
  });

  // 3. The pool and its load readings. Pods that leave the pool are forgotten by the index.
  const endpoints = new EndpointStore({ staleAfterMs: config.endpoints.staleAfterMs, logger });
  const scraper = new LoadScraper(endpoints, {
    intervalMs: config.endpoints.scrapeIntervalMs,
    timeoutMs: config.endpoints.scrapeTimeoutMs,
    path: config.endpoints.metricsPath,
    expected: { blockSize: config.tokenizer.blockSize, hashAlgo: config.tokenizer.hashAlgo },
    logger,
  });
  endpoints.onChange((change) => {
    if (config.kvEvents.mode === "connect") {
      if (change.kind === "added") kvEvents.addPod(change.endpoint.address);
      if (change.kind === "removed") kvEvents.removePod(change.endpoint.address);
    } else if (change.kind === "removed") {
      // Bind mode names pods by topic: "ip" (reference topic) or "ip:port". Another endpoint on the same IP
      // (a data-parallel rank) keeps the IP-named state alive.
      kvEvents.removePod(change.endpoint.address);
      if (!endpoints.specs().some((s) => s.ip === change.endpoint.ip)) kvEvents.removePod(change.endpoint.ip);
    }
  });

  // 4. The read path: tokenize → hash → schedule.
  const tokenizer = new TokenizationService({ config: config.tokenizer, logger, metrics });
  const hasher = new BlockHasher({
    scheme: config.tokenizer.hashAlgo,
    hashSeed: config.tokenizer.hashSeed!,
    blockSize: config.tokenizer.blockSize,
    memoBlocks: config.tokenizer.hashMemoBlocks,
  });
  const scheduler = createScheduler(config.scheduling, { endpoints, prefixLookup: index });
  const director = new Director({ tokenizer, hasher, scheduler, endpoints, logger, metrics });

  // 5. Servers. Ready once the pool is known (a static pool is known at start).
  let poolSynced = false;
  const isReady = () => poolSynced;
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
    metrics,
  });
  const admin: AdminServer = createAdminServer({
    registry: metrics.registry,
    port: config.server.metricsPort,
    host,
    logger,
    isReady,
  });

  return {
    config,
    metrics,
    index,
    endpoints,
    kvEvents,
    async start() {
      await kvEvents.start();
      endpoints.replaceAll(parseEndpointList(config.pool.endpoints));
      scraper.start();
      poolSynced = true;
      const metricsPort = await admin.start();
      const { grpcPort, healthPort } = await extProc.start();
      const ports = { grpcPort, healthPort, metricsPort, kvEventsEndpoint: kvEvents.endpoint };
      logger.info(
        {
          ...ports,
          secureServing: config.server.secureServing,
          endpoints: endpoints.size,
          kvEventsMode: config.kvEvents.mode,
          blockSize: config.tokenizer.blockSize,
          hashAlgo: config.tokenizer.hashAlgo,
          hashSeed: config.tokenizer.hashSeed,
        },
        "kvpick started",
      );
      return ports;
    },
    async stop(graceMs = 0) {
      await extProc.shutdown(graceMs);
      await Promise.allSettled([admin.close(), scraper.stop(), kvEvents.close(), tokenizer.close()]);
    },
  };
}
