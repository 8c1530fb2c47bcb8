// Builders shared by the scheduling tests and benchmark: endpoints in a given load state and a fake index.
import type { Endpoint, LoadMetrics, MetricsState } from "../endpoints/endpoint.js";
import { type CacheView, createCacheView } from "../cache-view/cache-view.js";
import type { PrefixLookup } from "../cache-view/prefix-lookup.js";
import type { EndpointSource, SchedulingRequest, SchedulingResult } from "./types.js";

export function anEndpoint(
  address: string,
  load: Partial<LoadMetrics> = {},
  state: MetricsState = "fresh",
): Endpoint {
  const colon = address.lastIndexOf(":");
  return {
    address,
    ip: address.slice(0, colon),
    port: Number(address.slice(colon + 1)),
    name: null,
    ready: true,
    metrics:
      state === "pending"
        ? null
        : {
            waiting: 0,
            running: 0,
            kvCacheUsage: 0,
            blockSize: 64,
            numGpuBlocks: 1000,
            prefixCachingHashAlgo: null,
            lora: null,
            ...load,
          },
    metricsState: state,
    metricsAgeMs: state === "pending" ? null : 10,
    lastScrapeError: state === "failed" ? "HTTP 500" : null,
  };
}

export const staticSource = (endpoints: readonly Endpoint[]): EndpointSource => ({
  candidates: (subset) => (subset == null ? endpoints : endpoints.filter((e) => subset.includes(e.address))),
});

/** A scheduler that always picks `pod` and keeps every request it was asked (the director's tests read them). */
export function recordingScheduler(pod: Endpoint): {
  schedule(request: SchedulingRequest): SchedulingResult;
  readonly asked: SchedulingRequest[];
} {
  const asked: SchedulingRequest[] = [];
  return {
    asked,
    schedule(request) {
      asked.push(request);
      return {
        kind: "picked",
        endpoint: pod,
        targets: [pod],
        prefixMatchBlocks: 0,
        totalBlocks: 0,
        scores: [],
      };
    },
  };
}

/** A fake index: pod id → how many leading blocks it holds and with which weight per block. */
export class FakePrefixLookup implements PrefixLookup {
  readonly pods = new Map<string, { blocks: number; weight: number }>();
  calls = 0;

  hold(podId: string, blocks: number, weight = 1): this {
    this.pods.set(podId, { blocks, weight });
    return this;
  }

  hasPod(podId: string): boolean {
    return this.pods.has(podId);
  }

  /** Pods that published events; every pod that holds blocks has, plus those `published()` names. */
  readonly publishedPods = new Set<string>();

  published(podId: string): this {
    this.publishedPods.add(podId);
    return this;
  }

  eventDriven(podId: string): boolean {
    return this.pods.has(podId) || this.publishedPods.has(podId);
  }

  matchPrefix(chain: BigUint64Array, podIds: readonly string[]) {
    this.calls++;
    const blocks = new Uint32Array(podIds.length);
    const weighted = new Float64Array(podIds.length);
    podIds.forEach((id, i) => {
      const held = this.pods.get(id);
      if (held === undefined) return;
      blocks[i] = Math.min(held.blocks, chain.length);
      weighted[i] = (blocks[i] ?? 0) * held.weight;
    });
    return { blocks, weighted };
  }
}

export function aRequest(blocks: number, subsetHint?: readonly string[]): SchedulingRequest {
  const blockHashes = new BigUint64Array(blocks);
  for (let i = 0; i < blocks; i++)
    blockHashes[i] = (BigInt(i + 1) * 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
  return {
    requestId: "r1",
    model: "m",
    targetModel: "m",
    blockHashes,
    headers: new Map(),
    ...(subsetHint ? { subsetHint } : {}),
  };
}

/**
 * The read model over `lookup` as kvpick serve builds it (cache-view/: speculative entries per the settings),
 * as createScheduler's `prefixLookup` and `routed`.
 */
export function readModel(
  settings: { speculativeTtlMs: number; speculativeMaxEntries: number },
  lookup: PrefixLookup | null,
  now?: () => number,
): { prefixLookup: PrefixLookup | null; routed?: CacheView["routed"] } {
  if (lookup === null) return { prefixLookup: null };
  const view = createCacheView({
    index: lookup,
    speculative: {
      ttlMs: settings.speculativeTtlMs,
      maxEntries: settings.speculativeMaxEntries,
      ...(now === undefined ? {} : { now }),
    },
  });
  return { prefixLookup: view.local, routed: view.routed };
}
