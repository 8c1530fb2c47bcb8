// The read path of the shared index: one EVALSHA per request walks the request's chain in Redis and returns
// every pod's longest cached prefix; the read model (cache-view/) awaits it before scheduling and merges it
// with the local view. Never fails a request: Redis down (no attempt), an error, or no answer within
// `lookupTimeoutMs` all yield null (the local index alone), counted in `epp_redis_lookups_total{outcome}`.
import type { SharedMatch, SharedMatches } from "../cache-view/cache-view.js";
import type { SharedIndexMetrics } from "./shared-index-metrics.js";
import { UNKNOWN_MEDIUM_WEIGHT } from "../kv-index/block-index.js";
import { chainHex, type RedisKeys } from "./redis-keys.js";
import type { RedisLink, ScriptArg } from "./redis-link.js";

export interface RedisPrefixSourceOptions {
  link: RedisLink;
  keys: RedisKeys;
  mediumWeights: Record<string, number>;
  lookupTimeoutMs: number;
  metrics: SharedIndexMetrics;
}

const TIMED_OUT = Symbol("timed out");

export class RedisPrefixSource implements SharedMatches {
  readonly #o: RedisPrefixSourceOptions;
  /** The script's fixed leading arguments: block prefix and medium weights. */
  readonly #head: ScriptArg[];

  constructor(options: RedisPrefixSourceOptions) {
    this.#o = options;
    const media = Object.entries(options.mediumWeights);
    this.#head = [options.keys.blockPrefix, UNKNOWN_MEDIUM_WEIGHT, media.length, ...media.flat()];
  }

  /** Every pod's cached prefix of this chain in Redis when it answers in time, else null. */
  async matchesFor(chain: BigUint64Array): Promise<ReadonlyMap<string, SharedMatch> | null> {
    const { link, metrics } = this.#o;
    if (chain.length === 0) return null;
    if (!link.up) {
      metrics.redisLookups.inc({ outcome: "down" });
      return null;
    }
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      const reply = await Promise.race([
        link.lookup([...this.#head, ...chainHex(chain)]),
        new Promise<typeof TIMED_OUT>((resolve) => {
          timer = setTimeout(resolve, this.#o.lookupTimeoutMs, TIMED_OUT);
        }),
      ]);
      if (reply === TIMED_OUT) {
        metrics.redisLookups.inc({ outcome: "timeout" });
        return null;
      }
      const shared = parseLookupReply(reply);
      metrics.redisLookups.inc({ outcome: "ok" });
      metrics.redisLookupSeconds.observe((performance.now() - started) / 1000);
      return shared;
    } catch {
      metrics.redisLookups.inc({ outcome: "error" });
      return null;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The lookup script's flat [pod, blocks, weighted, …] reply; anything malformed is skipped. */
export function parseLookupReply(reply: unknown): Map<string, SharedMatch> {
  const out = new Map<string, SharedMatch>();
  if (!Array.isArray(reply)) return out;
  for (let i = 0; i + 2 < reply.length; i += 3) {
    const pod = reply[i];
    const blocks = Number(reply[i + 1]);
    const weighted = Number(reply[i + 2]);
    if (typeof pod !== "string" || !Number.isInteger(blocks) || blocks < 0 || !Number.isFinite(weighted))
      continue;
    out.set(pod, { blocks, weighted });
  }
  return out;
}
