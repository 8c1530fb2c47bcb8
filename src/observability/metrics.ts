// Every Prometheus metric kvpick exports, on a per-app registry (never prom-client's global one, so tests
// and several apps in one process do not collide). Hot data structures know nothing about metrics: the
// orchestrators record here, and sizes are read from `stats()` callbacks at scrape time.
// kvpick's own names use the `epp_` prefix with unit suffixes; GIE-compatible `inference_*` names are kept
// verbatim where the ecosystem's dashboards expect them.
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { ExtProcMetrics } from "./ext-proc-metrics.js";
import { KvEventsMetrics } from "./kv-events-metrics.js";
import { ModelLabels, type ServedModels } from "./label-bounds.js";
import { STAGE_BUCKETS } from "./stage-buckets.js";
import { TokenizationMetrics } from "./tokenization-metrics.js";

export class Metrics {
  readonly registry: Registry;

  // --- tokenization (tokenization-metrics.ts; handed to the TokenizationService) ---
  readonly tokenization: TokenizationMetrics;

  // --- KV events (per pod = the topic's pod id, or the connect-mode endpoint): kv-events-metrics.ts ---
  readonly kvEvents: KvEventsMetrics;

  // --- request path (ext_proc → routing decision) ---
  readonly requests: Counter<"code">;
  /** Client-chosen model names → bounded label values (label-bounds.ts); app.ts tells it what the pool serves. */
  readonly modelLabels: ModelLabels;
  #served: ServedModels = { serves: () => false };
  readonly inflightRequests: Gauge;

  // --- ext_proc streams and outcomes (ext-proc-metrics.ts; handed to the ext_proc server) ---
  readonly extProc: ExtProcMetrics;

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
    this.extProc = new ExtProcMetrics(registry, { requests: this.requests, inflight: this.inflightRequests });

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

    this.tokenization = new TokenizationMetrics(registry);

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
}
