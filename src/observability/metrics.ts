// Every Prometheus metric kvpick exports, on a per-app registry (never prom-client's global one, so tests
// and several apps in one process do not collide). Hot data structures know nothing about metrics: the
// orchestrators record here, and sizes are read from `stats()` callbacks at scrape time.
// kvpick's own names use the `epp_` prefix with unit suffixes; GIE-compatible `inference_*` names are kept
// verbatim where the ecosystem's dashboards expect them.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { Endpoint } from "../endpoints/endpoint.js";
import { KvEventsMetrics } from "./kv-events-metrics.js";
import { ModelLabels, type ServedModels } from "./label-bounds.js";

/** The pool as the scrape-time gauges read it (endpoints/endpoint-store.ts implements it). */
export interface PoolStatsSource {
  /** Every endpoint of the pool with its latest load reading, ready or not. */
  endpoints(): readonly Endpoint[];
}

/** Sizes read at scrape time, so the index never pays for metrics on its hot path. */
export interface IndexStatsSource {
  stats(): { entries: number; blocks: number; pods: number; evictions: number };
}

// Per-stage request latencies: a warm request is tens of µs; a cold 32k-token prompt tens of ms.
export const STAGE_BUCKETS = [1e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 0.5, 2];

export class Metrics {
  readonly registry: Registry;

  // --- tokenization ---
  readonly tokenizeSeconds: Histogram<"mode">;
  readonly tokenCacheHits: Counter;
  readonly tokenCacheMisses: Counter;
  readonly tokenCacheBytes: Gauge;

  // --- KV events (per pod = the topic's pod id, or the connect-mode endpoint): kv-events-metrics.ts ---
  readonly kvEvents: KvEventsMetrics;

  // --- request path (ext_proc → routing decision) ---
  readonly requests: Counter<"code">;
  /** Client-chosen model names → bounded label values (label-bounds.ts); app.ts tells it what the pool serves. */
  readonly modelLabels: ModelLabels;
  #served: ServedModels = { serves: () => false };
  readonly inflightRequests: Gauge;

  // --- ext_proc streams (one per HTTP request Envoy sends through kvpick) ---
  readonly extProcStreams: Gauge;

  // --- shared block index in Redis (index.redis) ---
  readonly redisUp: Gauge;
  readonly redisLookups: Counter<"outcome">;
  readonly redisLookupSeconds: Histogram;
  readonly redisWrites: Counter<"outcome">;
  readonly redisPodClears: Counter<"outcome">;

  constructor(registry: Registry = new Registry()) {
    this.registry = registry;
    const r = [registry];

    this.requests = new Counter({
      name: "epp_requests_total",
      help: "Requests answered, by result code (200 = routed, else the ImmediateResponse status).",
      labelNames: ["code"],
      registers: r,
    });
    this.modelLabels = new ModelLabels({ serves: (model) => this.#served.serves(model) });
    this.inflightRequests = new Gauge({
      name: "epp_inflight_requests",
      help: "Requests routed whose response has not finished.",
      registers: r,
    });
    this.extProcStreams = new Gauge({
      name: "epp_extproc_streams_active",
      help: "Open ext_proc gRPC streams (Envoy keeps one per in-flight HTTP request).",
      registers: r,
    });

    this.redisUp = new Gauge({
      name: "epp_redis_up",
      help: "1 while the shared index's Redis connection is ready, else 0 (routing then uses the local index only).",
      registers: r,
    });
    this.redisLookups = new Counter({
      name: "epp_redis_lookups_total",
      help: "Shared-index lookups per request, by outcome (ok | timeout | error | down); all but ok route on the local index.",
      labelNames: ["outcome"],
      registers: r,
    });
    this.redisLookupSeconds = new Histogram({
      name: "epp_redis_lookup_duration_seconds",
      help: "Round trip of one successful shared-index lookup (the whole chain in one EVALSHA).",
      buckets: STAGE_BUCKETS,
      registers: r,
    });
    this.redisWrites = new Counter({
      name: "epp_redis_writes_total",
      help: "Block-pod-medium entries mirrored to Redis, by outcome (written | dropped: Redis down or backlog full | failed).",
      labelNames: ["outcome"],
      registers: r,
    });
    this.redisPodClears = new Counter({
      name: "epp_redis_pod_clears_total",
      help: "Pods cleared in Redis (reset, publisher restart, left the pool), by outcome (done | failed).",
      labelNames: ["outcome"],
      registers: r,
    });

    this.tokenizeSeconds = new Histogram({
      name: "epp_tokenize_duration_seconds",
      help: "Time to render and tokenize one request, by where it ran (cache, main, worker).",
      labelNames: ["mode"],
      buckets: STAGE_BUCKETS,
      registers: r,
    });
    this.tokenCacheHits = new Counter({
      name: "epp_token_cache_hits_total",
      help: "Text segments whose token ids came from the segment cache.",
      registers: r,
    });
    this.tokenCacheMisses = new Counter({
      name: "epp_token_cache_misses_total",
      help: "Text segments that had to be tokenized.",
      registers: r,
    });
    this.tokenCacheBytes = new Gauge({
      name: "epp_token_cache_bytes",
      help: "Bytes held by the token-id segment cache.",
      registers: r,
    });

    this.kvEvents = new KvEventsMetrics(registry);
  }

  /**
   * Per pod, its KV-event accuracy as a state set (1 for the current state, 0 for the others): exact,
   * degraded (its cache credit counts less), no-events (a pool member that never published). Read at
   * scrape time.
   */
  /** Which models the pool serves: only those become `model_name` label values, the rest count as "other". */
  servedModels(served: ServedModels): void {
    this.#served = served;
  }

  watchPodAccuracy(source: { accuracy(): Map<string, string> }, states: readonly string[]): void {
    new Gauge({
      name: "epp_kv_pod_accuracy",
      help: "1 for the pod's KV-event accuracy state (exact | degraded | no-events), 0 for the others.",
      labelNames: ["pod", "state"],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [pod, current] of source.accuracy())
          for (const state of states) this.set({ pod, state }, state === current ? 1 : 0);
      },
    });
  }

  /** The shared index in Redis: its write backlog, read at scrape time. */
  watchRedisMirror(source: { pendingWrites(): number }): void {
    new Gauge({
      name: "epp_redis_pending_writes",
      help: "Block-pod-medium entries changed locally and not yet written to Redis (bounded by index.redis.maxPendingWrites).",
      registers: [this.registry],
      collect() {
        this.set(source.pendingWrites());
      },
    });
  }

  /** 1/0 per pool endpoint: has kvpick ever received its KV events? Read at scrape time. */
  watchEventSources(source: { seen(): Map<string, 0 | 1> }): void {
    new Gauge({
      name: "epp_kv_pod_events_seen",
      help: "1 when KV events from this pool endpoint have been received, 0 while it never published (0 % hit rate).",
      labelNames: ["endpoint"],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [endpoint, v] of source.seen()) this.set({ endpoint }, v);
      },
    });
  }

  /** Speculative prefix entries (cache-view/speculative), read at scrape time. */
  watchSpeculative(source: {
    stats(): {
      entries: number;
      added: number;
      hits: number;
      confirmed: number;
      expired: number;
      evicted: number;
    };
  }): void {
    type Key = keyof ReturnType<typeof source.stats>;
    const registers = [this.registry];
    new Gauge({
      name: "epp_speculative_entries",
      help: "Live speculative (pod, block) entries: routed, not yet expired.",
      registers,
      collect() {
        this.set(source.stats().entries);
      },
    });
    // Monotonic totals kept by the speculative index: exported as counters holding its running value.
    const counter = (name: string, help: string, key: Key) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(source.stats()[key]);
        },
      });
    counter("epp_speculative_entries_added_total", "Speculative entries created.", "added");
    counter(
      "epp_speculative_hits_total",
      "Prefix lookups in which a speculative entry lengthened a candidate's cached prefix.",
      "hits",
    );
    counter(
      "epp_speculative_confirmed_total",
      "Speculative entries vLLM had reported (BlockStored) by the time they expired.",
      "confirmed",
    );
    counter(
      "epp_speculative_expired_total",
      "Speculative entries that expired unconfirmed: the pod never reported the block.",
      "expired",
    );
    counter(
      "epp_speculative_evicted_total",
      "Speculative entries dropped before their TTL by scheduling.speculativeMaxEntries.",
      "evicted",
    );
  }

  /** The estimated prefix index used for endpoints without KV events, read at scrape time. */
  watchEstimatedFallback(source: { stats(): { pods: number; entries: number } }): void {
    new Gauge({
      name: "epp_estimated_prefix_entries",
      help: "Approximate prefix keys remembered for endpoints without KV events (estimated fallback).",
      registers: [this.registry],
      collect() {
        this.set(source.stats().entries);
      },
    });
  }

  /** Dispatch credit per endpoint: prompt tokens routed whose first token has not come back. */
  watchDispatch(source: {
    candidates(): readonly {
      address: string;
      dispatched?: { pendingPrefillTokens: number; inflight: number };
    }[];
  }): void {
    new Gauge({
      name: "epp_endpoint_pending_prefill_tokens",
      help: "Prompt tokens kvpick routed to the endpoint that are not prefilled yet (first token not seen).",
      labelNames: ["endpoint"],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const e of source.candidates())
          this.set({ endpoint: e.address }, e.dispatched?.pendingPrefillTokens ?? 0);
      },
    });
  }

  /** Exposes the index's size at scrape time. */
  watchIndex(index: IndexStatsSource): void {
    const r = [this.registry];
    const read = (key: keyof ReturnType<IndexStatsSource["stats"]>) =>
      function (this: Gauge) {
        this.set(index.stats()[key]);
      };
    new Gauge({
      name: "epp_kv_index_entries",
      help: "Block-pod-medium entries in the index.",
      registers: r,
      collect: read("entries"),
    });
    new Gauge({
      name: "epp_kv_index_blocks",
      help: "Distinct block hashes in the index.",
      registers: r,
      collect: read("blocks"),
    });
    new Gauge({
      name: "epp_kv_index_pods",
      help: "Pods with at least one indexed block.",
      registers: r,
      collect: read("pods"),
    });
    new Gauge({
      name: "epp_kv_index_evictions_total",
      help: "Entries evicted because the index reached index.maxEntries (monotonic).",
      registers: r,
      collect: read("evictions"),
    });
  }

  /**
   * Pool gauges at scrape time: GIE's `inference_pool_*` names (dashboards expect them) and per endpoint
   * whether its load reading is fresh — a pod whose /metrics fails or lags is scored as saturated.
   */
  watchPool(pool: PoolStatsSource, poolName: string): void {
    const r = [this.registry];
    const fresh = (e: Endpoint) => e.ready && e.metricsState === "fresh" && e.metrics !== null;
    new Gauge({
      name: "epp_endpoint_metrics_fresh",
      help: "1 while the endpoint's latest /metrics scrape succeeded recently, 0 when it failed, is stale or never ran.",
      labelNames: ["endpoint", "state"],
      registers: r,
      collect() {
        this.reset();
        for (const e of pool.endpoints())
          this.set({ endpoint: e.address, state: e.metricsState }, fresh(e) ? 1 : 0);
      },
    });
    new Gauge({
      name: "inference_pool_ready_pods",
      help: "Ready endpoints in the pool (GIE name).",
      labelNames: ["name"],
      registers: r,
      collect() {
        this.set({ name: poolName }, pool.endpoints().filter((e) => e.ready).length);
      },
    });
    const average = (read: (e: Endpoint) => number) =>
      function (this: Gauge<"name">) {
        const live = pool.endpoints().filter(fresh);
        this.set(
          { name: poolName },
          live.length === 0 ? 0 : live.reduce((s, e) => s + read(e), 0) / live.length,
        );
      };
    new Gauge({
      name: "inference_pool_average_kv_cache_utilization",
      help: "Mean KV-cache usage (0..1) over endpoints with fresh metrics (GIE name).",
      labelNames: ["name"],
      registers: r,
      collect: average((e) => e.metrics?.kvCacheUsage ?? 0),
    });
    new Gauge({
      name: "inference_pool_average_queue_size",
      help: "Mean waiting requests over endpoints with fresh metrics (GIE name).",
      labelNames: ["name"],
      registers: r,
      collect: average((e) => e.metrics?.waiting ?? 0),
    });
    new Gauge({
      name: "inference_pool_per_pod_queue_size",
      help: "Waiting requests per endpoint, from its latest scrape (GIE name).",
      labelNames: ["name", "model_server_pod"],
      registers: r,
      collect() {
        this.reset();
        for (const e of pool.endpoints())
          if (e.metrics !== null)
            this.set({ name: poolName, model_server_pod: e.name ?? e.address }, e.metrics.waiting);
      },
    });
  }

  /** Node process metrics (CPU, resident memory, heap, event-loop lag, GC) with their standard names. */
  collectProcessMetrics(): void {
    collectDefaultMetrics({ register: this.registry });
  }
}
