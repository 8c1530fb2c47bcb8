// Composition-root section "the cache": the block index, the KV-event path that writes it (following the
// pool), the optional shared index in Redis, and the read model scheduling sees (cache-view/). Only
// construction from configuration: behaviour lives in kv-index/, kv-events/, shared-index/ and cache-view/.
import { type CacheView, createCacheView } from "../cache-view/cache-view.js";
import type { Config } from "../config/schema.js";
import type { EndpointStore } from "../endpoints/endpoint-store.js";
import { createKvEvents, type KvEvents } from "../kv-events/create-kv-events.js";
import type { IndexMirror } from "../kv-events/index-mirror.js";
import { ACCURACY_STATES } from "../kv-events/pod-accuracy.js";
import { BlockIndex } from "../kv-index/block-index.js";
import type { LearntBlockSize } from "../kv-index/learnt-block-size.js";
import { watchIndex } from "../observability/index-metrics.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { createRedisSharedIndex, type RedisSharedIndex } from "../shared-index/redis-shared-index.js";

export interface Cache {
  readonly index: BlockIndex;
  readonly kvEvents: KvEvents;
  /** The shared index in Redis when `index.redis.url` is set, else null. */
  readonly sharedIndex: RedisSharedIndex | null;
  readonly view: CacheView;
}

export function setupCache(
  config: Config,
  o: { logger: Logger; metrics: Metrics; endpoints: EndpointStore; blockSizes: LearntBlockSize },
): Cache {
  const { logger, metrics } = o;
  const index = new BlockIndex({
    maxEntries: config.index.maxEntries,
    mediumWeights: config.index.mediumWeights,
  });
  watchIndex(metrics.registry, index);
  // Optional: every change is mirrored to Redis and every request also reads it (README "High availability").
  const sharedIndex =
    config.index.redis.url === null
      ? null
      : createRedisSharedIndex({ config: config.index, index, logger, metrics });
  // Every pod clear the ingest applies also reaches the read model (its speculative entries for that pod go),
  // through the same seam as the Redis mirror; the view is built below, after the event path it reads.
  let view: CacheView | null = null;
  const mirror = followedBy(sharedIndex?.mirror ?? null, (pod) => view?.podCleared(pod));
  // The KV-event path follows the pool: membership, subscriptions, replay addresses, silent pods.
  const kvEvents = createKvEvents({
    config: config.kvEvents,
    hash: { ...config.tokenizer, keys: config.kvEvents.keys, blockSizes: o.blockSizes },
    index,
    logger,
    recorder: metrics.kvEvents,
    mirror,
    pool: o.endpoints,
  });
  metrics.watchEventSources(kvEvents.poolFollowing!.silentPods);
  metrics.watchPodAccuracy(kvEvents.poolFollowing!.silentPods, ACCURACY_STATES);
  // The read model: index + a degraded pod's lower credit (index.degradedCreditFactor) + speculative entries
  // (scheduling.speculativeTtlMs) + the shared index per request.
  view = createCacheView({
    index,
    events: kvEvents,
    degradedCreditFactor: config.index.degradedCreditFactor,
    speculative: {
      ttlMs: config.scheduling.speculativeTtlMs,
      maxEntries: config.scheduling.speculativeMaxEntries,
    },
    shared: sharedIndex?.prefixSource ?? null,
  });
  if (view.speculative !== null) metrics.watchSpeculative(view.speculative);
  return { index, kvEvents, sharedIndex, view };
}

/** The Redis mirror (if any), with every pod clear also handed to `cleared`. */
function followedBy(mirror: IndexMirror | null, cleared: (pod: string) => void): IndexMirror {
  if (mirror === null) return { touched() {}, podCleared: cleared };
  return {
    touched: (pod, medium, words, count) => mirror.touched(pod, medium, words, count),
    podCleared(pod) {
      mirror.podCleared(pod);
      cleared(pod);
    },
  };
}
