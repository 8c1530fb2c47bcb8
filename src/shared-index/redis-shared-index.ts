// The optional Redis-backed shared block index (index.redis.url): one connection, the write path (a mirror
// fed by the KV-event ingest) and the read path (a per-request lookup for the director). Built by app.ts
// only when configured; without it kvpick routes on its in-memory index alone.
//
// Why: in bind mode each vLLM pod publishes to one kvpick replica, so each replica's index is partial;
// Redis holds the union, and a restarted replica routes from it at once (warm restart). The local index
// stays authoritative for the pods a replica receives, and routing never waits on Redis for longer than
// `lookupTimeoutMs`.
import type { Config } from "../config/schema.js";
import type { BlockIndex } from "../kv-index/block-index.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { PrefixLookup } from "../scheduling/types.js";
import { RedisIndexMirror } from "./redis-index-mirror.js";
import { redisKeys } from "./redis-keys.js";
import { RedisLink } from "./redis-link.js";
import { RedisPrefixSource } from "./redis-prefix-source.js";

export interface RedisSharedIndex {
  readonly link: RedisLink;
  readonly mirror: RedisIndexMirror;
  readonly prefixSource: RedisPrefixSource;
  /** Connects in the background: startup never waits for Redis. */
  start(): void;
  close(): Promise<void>;
}

export function createRedisSharedIndex(options: {
  config: Config["index"];
  index: BlockIndex;
  /** How requests read the local index (with per-pod credit factors); default the index itself. */
  local?: PrefixLookup;
  logger: Logger;
  metrics: Metrics;
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
    local: options.local ?? index,
    keys,
    mediumWeights: config.mediumWeights,
    lookupTimeoutMs: redis.lookupTimeoutMs,
    metrics,
  });
  const m = mirror;
  return {
    link,
    mirror: m,
    prefixSource,
    start() {
      link.start();
      logger.info(
        { url: redactUrl(redis.url!), keyPrefix: redis.keyPrefix, ttlSeconds: redis.ttlSeconds },
        "shared index: Redis configured",
      );
    },
    async close() {
      // Let the last tick's changes reach Redis (bounded: a slow or dead Redis must not hold up shutdown).
      if (link.up) await Promise.race([m.settled(), new Promise((r) => setTimeout(r, 1000).unref())]);
      m.close();
      await link.close();
    },
  };
}

/** The URL without its password, for logs. */
export function redactUrl(url: string): string {
  return url.replace(/^(\w+:\/\/[^:@/]*:)[^@/]*@/, "$1***@");
}
