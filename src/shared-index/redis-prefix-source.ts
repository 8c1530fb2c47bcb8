// The read path of the shared index: one EVALSHA per request walks the request's chain in Redis and returns
// every pod's longest cached prefix; the director awaits it before scheduling and hands the scheduler a
// merged local + shared view. Never fails a request: Redis down (no attempt), an error, or no answer within
// `lookupTimeoutMs` all yield the local index alone, counted in `epp_redis_lookups_total{outcome}`.
import type { PrefixLookup } from "../scheduling/types.js";
import type { Metrics } from "../observability/metrics.js";
import { UNKNOWN_MEDIUM_WEIGHT } from "../kv-index/block-index.js";
import { MergedPrefixLookup, type SharedMatch } from "./merged-prefix-lookup.js";
import { chainHex, type RedisKeys } from "./redis-keys.js";
import type { RedisLink, ScriptArg } from "./redis-link.js";

export interface RedisPrefixSourceOptions {
  link: RedisLink;
  /** The local index, consulted always and alone when Redis cannot answer. */
  local: PrefixLookup;
  keys: RedisKeys;
  mediumWeights: Record<string, number>;
  lookupTimeoutMs: number;
  metrics: Metrics;
}

const TIMED_OUT = Symbol("timed out");

export class RedisPrefixSource {
  readonly #o: RedisPrefixSourceOptions;
  /** The script's fixed leading arguments: block prefix and medium weights. */
  readonly #head: ScriptArg[];

  constructor(options: RedisPrefixSourceOptions) {
    this.#o = options;
    const media = Object.entries(options.mediumWeights);
    this.#head = [options.keys.blockPrefix, UNKNOWN_MEDIUM_WEIGHT, media.length, ...media.flat()];
  }

  /** The lookup to schedule this chain with: merged with Redis when it answers in time, else local. */
  async lookupFor(chain: BigUint64Array): Promise<PrefixLookup> {
    const { link, local, metrics } = this.#o;
    if (chain.length === 0) return local;
    if (!link.up) {
      metrics.redisLookups.inc({ outcome: "down" });
      return local;
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
        return local;
      }
      const shared = parseLookupReply(reply);
      metrics.redisLookups.inc({ outcome: "ok" });
      metrics.redisLookupSeconds.observe((performance.now() - started) / 1000);
      return new MergedPrefixLookup(local, chain, shared);
    } catch {
      metrics.redisLookups.inc({ outcome: "error" });
      return local;
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
