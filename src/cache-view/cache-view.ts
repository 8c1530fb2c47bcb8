// The read model: what kvpick believes each pod holds, built once from its layers (llm-d kvblock/index.go
// as the model: one contract, one key rule, one factory).
//
//   engine-fed index (kv-index)                    exact blocks per pod, from vLLM's KV events
//   + accuracy credit (from the KV-event side)     a degraded pod's weighted credit × degradedCreditFactor
//   + speculative entries (speculative/)           what kvpick just routed counts as cached for a TTL
//   = `local`, the view every request starts from
//   + the shared index (Redis), per request        merged with Redis's answer for the request's chain
//
// Scheduling sees exactly one PrefixLookup per request: `local`, or what `lookupFor(chain)` returns.
import { MergedPrefixLookup, type SharedMatch } from "./merged-prefix-lookup.js";
import { type PodAddress, podAddress, podKeyOf } from "./pod-key.js";
import { isEventDriven, type PrefixLookup } from "./prefix-lookup.js";
import { SpeculativePrefixLookup } from "./speculative/speculative-prefix-lookup.js";

export type { SharedMatch };

/** What the KV-event side knows about a pod's stream (kv-events' ingest implements it; wired in app.ts). */
export interface EventSources {
  /** The pod id has published a KV event since it joined the pool. */
  published(podId: string): boolean;
  /** Whether the pod's index state is exact or degraded (events lost, not recovered); null = unknown pod. */
  accuracy(podId: string): string | null;
}

/** The shared index's read path (shared-index/redis-prefix-source.ts implements it). Resolves, never rejects. */
export interface SharedMatches {
  /** Every pod's longest cached prefix of `chain` in the shared index; null when it could not answer. */
  matchesFor(chain: BigUint64Array): Promise<ReadonlyMap<string, SharedMatch> | null>;
}

export interface CacheViewOptions {
  /** The engine-fed index (kv-index/block-index.ts). */
  index: Pick<PrefixLookup, "matchPrefix" | "hasPod">;
  /** Absent = every pod that holds blocks counts as publishing, and at full credit. */
  events?: EventSources;
  /** index.degradedCreditFactor: the credit of a degraded pod's blocks. */
  degradedCreditFactor?: number;
  /** scheduling.speculativeTtlMs / speculativeMaxEntries; null or ttlMs 0 = off. */
  speculative?: { ttlMs: number; maxEntries: number; now?: () => number } | null;
  /** index.redis: read once per request; absent = the local view alone. */
  shared?: SharedMatches | null;
}

export interface CacheView {
  /** Index + accuracy credit + speculative entries: the view without the shared index. */
  readonly local: PrefixLookup;
  /** The speculative layer (its stats reach /metrics), null when off. */
  readonly speculative: SpeculativePrefixLookup | null;
  /** Whether `lookupFor` asks the shared index (a round trip per request). */
  readonly shared: boolean;
  /** The one lookup to schedule `chain` with: `local`, merged with the shared index's answer when it has one. */
  lookupFor(chain: BigUint64Array): Promise<PrefixLookup>;
  /**
   * The request with this chain was routed to `pod`: its blocks count as cached there for the speculative
   * TTL, under the id `view` knows the pod by. Pods that never published get none (the estimated fallback
   * covers them).
   */
  routed(view: PrefixLookup, pod: PodAddress, chain: BigUint64Array): void;
  /** The gateway served the request from `address` instead (a fallback): its blocks move there. */
  servedBy(address: string, chain: BigUint64Array): void;
  /**
   * The engine-fed index dropped every block of `podId` (AllBlocksCleared, publisher restart, pod left): the
   * speculative entries routed there before stop counting too, instead of outliving the clear by their TTL.
   */
  podCleared(podId: string): void;
}

export function createCacheView(o: CacheViewOptions): CacheView {
  const { index, events } = o;
  const degraded = o.degradedCreditFactor ?? 1;
  const base: PrefixLookup =
    events === undefined
      ? index
      : {
          matchPrefix: (chain, pods) => index.matchPrefix(chain, pods),
          hasPod: (pod) => index.hasPod(pod),
          eventDriven: (pod) => events.published(pod),
          creditFactor: (pod) => (events.accuracy(pod) === "degraded" ? degraded : 1),
        };
  const s = o.speculative;
  const speculative = s == null || s.ttlMs === 0 ? null : new SpeculativePrefixLookup(base, s);
  const local = speculative ?? base;
  const shared = o.shared ?? null;
  return {
    local,
    speculative,
    shared: shared !== null,
    async lookupFor(chain) {
      if (shared === null || chain.length === 0) return local;
      const matches = await shared.matchesFor(chain);
      return matches === null ? local : new MergedPrefixLookup(local, chain, matches);
    },
    routed(view, pod, chain) {
      if (speculative === null || chain.length === 0) return;
      const id = podKeyOf((p) => isEventDriven(view, p), pod);
      if (id !== null) speculative.record(id, chain);
    },
    servedBy(address, chain) {
      if (speculative === null || chain.length === 0) return;
      const id = podKeyOf((p) => speculative.hasPod(p), podAddress(address));
      if (id !== null) speculative.record(id, chain);
    },
    podCleared(podId) {
      speculative?.podCleared(podId);
    },
  };
}
