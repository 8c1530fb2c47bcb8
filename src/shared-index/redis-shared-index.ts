// The optional Redis-backed shared block index (index.redis.url): one connection, the write path (a mirror
// fed by the KV-event ingest) and the read path (a per-request lookup for the director). Built by app.ts
// only when configured; without it kvpick routes on its in-memory index alone.
//
// Why: in bind mode each vLLM pod publishes to one kvpick replica, so each replica's index is partial;
// Redis holds the union, and a restarted replica routes from it at once (warm restart). The local index
// stays authoritative for the pods a replica receives, and routing never waits on Redis for longer than
// `lookupTimeoutMs`.
import type { BlockIndex } from "../kv-index/block-index.js";
import type { Logger } from "../observability/logger.js";
import type { SharedIndexMetrics } from "./shared-index-metrics.js";
import type { Service } from "../service-group.js";
import { RedisIndexMirror } from "./redis-index-mirror.js";
import { redisKeys } from "./redis-keys.js";
import { RedisLink } from "./redis-link.js";
import { RedisPrefixSource } from "./redis-prefix-source.js";

export interface RedisSharedIndex extends Service {
  readonly link: RedisLink;
  readonly mirror: RedisIndexMirror;
  /** The per-request read (cache-view/ merges its answer with the local view). */
  readonly prefixSource: RedisPrefixSource;
  /** Connects in the background: startup never waits for Redis. */
  start(): undefined;
  /**
   * Lets the last changes reach Redis (for up to 1 s whatever the request grace: those writes are the next
   * replica's warm start, and a slow or dead Redis must not hold up shutdown), then closes the connection.
   * Stop it after the KV-event subscriber, so its last changes are in.
   */
  stop(graceMs?: number): Promise<void>;
}

/** The index settings the shared index reads (config/schema.ts `Config["index"]` fits). */
export interface SharedIndexSettings {
  readonly mediumWeights: Record<string, number>;
  readonly redis: {
    readonly url: string | null;
    readonly keyPrefix: string;
    readonly ttlSeconds: number;
    readonly lookupTimeoutMs: number;
    readonly maxPendingWrites: number;
    readonly connectTimeoutMs: number;
  };
}

/** The longest a stopping shared index waits for its last writes. */
const MAX_FLUSH_MS = 1000;

export function createRedisSharedIndex(options: {
  config: SharedIndexSettings;
  index: BlockIndex;
  logger: Logger;
  metrics: SharedIndexMetrics;
}): RedisSharedIndex {
  const { config, index, metrics } = options;
  const redis = config.redis;
  if (redis.url === null) throw new Error("createRedisSharedIndex: index.redis.url is not set");
  const logger = options.logger.child({ component: "shared-index" });
  const keys = redisKeys(redis.keyPrefix);
  let mirror: RedisIndexMirror | null = null;
  const link = new RedisLink({
    url: redis.url,
    logger,
    connectTimeoutMs: redis.connectTimeoutMs,
    onState: (up) => {
      metrics.redisUp.set(up ? 1 : 0);
      if (up) mirror?.onReady();
    },
  });
  mirror = new RedisIndexMirror({
    link,
    index,
    keys,
    ttlSeconds: redis.ttlSeconds,
    maxPendingWrites: redis.maxPendingWrites,
    logger,
    metrics,
  });
  metrics.redisUp.set(0);
  metrics.watchRedisMirror(mirror);
  const prefixSource = new RedisPrefixSource({
    link,
    keys,
    mediumWeights: config.mediumWeights,
    lookupTimeoutMs: redis.lookupTimeoutMs,
    metrics,
  });
  const m = mirror;
  return {
    name: "shared-index",
    link,
    mirror: m,
    prefixSource,
    start() {
      link.start();
      logger.info(
        { url: redactUrl(redis.url!), keyPrefix: redis.keyPrefix, ttlSeconds: redis.ttlSeconds },
        "shared index: Redis configured",
      );
      return undefined;
    },
    async stop() {
      if (link.up) await Promise.race([m.settled(), new Promise((r) => setTimeout(r, MAX_FLUSH_MS).unref())]);
      m.close();
      await link.close();
    },
  };
}

/** The URL without its password, for logs. */
export function redactUrl(url: string): string {
  return url.replace(/^(\w+:\/\/[^:@/]*:)[^@/]*@/, "$1***@");
}
