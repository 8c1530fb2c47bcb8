// Every Prometheus metric kvpick exports, on a per-app registry (never prom-client's global one, so tests
// and several apps in one process do not collide). Hot data structures know nothing about metrics: the
// orchestrators record here, and sizes are read from `stats()` callbacks at scrape time.
// kvpick's own names use the `epp_` prefix with unit suffixes; GIE-compatible `inference_*` names are kept
// verbatim where the ecosystem's dashboards expect them.
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { ExtProcMetrics } from "./ext-proc-metrics.js";
import { ModelLabels, type ServedModels } from "./label-bounds.js";
import { RequestMetrics } from "./request-metrics.js";
import { STAGE_BUCKETS } from "./stage-buckets.js";
import { TokenizationMetrics } from "./tokenization-metrics.js";

// Apply latency of one event batch: most batches are a few events (µs), a pod clear can take ms.
const APPLY_BUCKETS = [1e-6, 5e-6, 2e-5, 1e-4, 5e-4, 2e-3, 1e-2, 5e-2, 0.25];

export class Metrics {
  readonly registry: Registry;

  // --- tokenization (tokenization-metrics.ts; handed to the TokenizationService) ---
  readonly tokenization: TokenizationMetrics;

  // --- KV events (per pod = the topic's pod id, or the connect-mode endpoint) ---
  readonly kvEventsReceived: Counter<"pod">;
  readonly kvEventsApplied: Counter<"pod" | "type">;
  readonly kvEventsMalformed: Counter<"pod" | "reason">;
  readonly kvEventsUnknown: Counter<"pod" | "kind">;
  readonly kvSeqGaps: Counter<"pod">;
  readonly kvSeqMissedBatches: Counter<"pod">;
  readonly kvPublisherRestarts: Counter<"pod">;
  readonly kvPodStale: Gauge<"pod">;
  readonly kvHashMismatches: Counter<"pod">;
  readonly kvTokenKeys: Gauge<"pod">;
  readonly kvTokenKeysSkipped: Counter<"pod" | "reason">;
  readonly kvApplySeconds: Histogram;
  readonly kvLastEventTimestamp: Gauge<"pod">;
  readonly kvEventsRejected: Counter<"reason">;
  readonly kvReplays: Counter<"pod" | "result">;
  readonly kvReplayedBatches: Counter<"pod">;
  readonly kvReplaysRunning: Gauge;
  readonly kvHeldDropped: Counter<"pod">;

  // --- request path (ext_proc → routing decision) ---
  readonly requests: Counter<"code">;
  /** Client-chosen model names → bounded label values (label-bounds.ts); app.ts tells it what the pool serves. */
  readonly modelLabels: ModelLabels;
  /** GIE's `inference_objective_*` per-request families (request-metrics.ts). */
  readonly objective: RequestMetrics;
  #served: ServedModels = { serves: () => false };
  readonly schedulingSeconds: Histogram;
  readonly stageSeconds: Histogram<"stage">;
  readonly prefixHitBlocks: Histogram;
  readonly prefixHitRatio: Histogram;
  readonly predictedCachedTokens: Counter;
  readonly actualCachedTokens: Counter;
  readonly cachedTokensError: Histogram;
  readonly endpointPicks: Counter<"endpoint">;
  readonly inflightRequests: Gauge;
  readonly cacheSignalMissing: Counter<"reason">;

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
    this.objective = new RequestMetrics(registry, this.modelLabels);
    this.schedulingSeconds = new Histogram({
      name: "epp_scheduling_duration_seconds",
      help: "EPP overhead per request: last body byte in to routing decision (parse, tokenize, hash, score).",
      buckets: STAGE_BUCKETS,
      registers: r,
    });
    this.stageSeconds = new Histogram({
      name: "epp_request_stage_duration_seconds",
      help: "Per-stage latency of the routing decision (stage = parse | tokenize | hash | shared-index | score).",
      labelNames: ["stage"],
      buckets: STAGE_BUCKETS,
      registers: r,
    });
    this.prefixHitBlocks = new Histogram({
      name: "epp_prefix_hit_blocks",
      help: "Cached prefix blocks on the chosen endpoint, per request.",
      // Powers of two up to 1024 blocks (64k tokens at block size 64).
      buckets: [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      registers: r,
    });
    this.prefixHitRatio = new Histogram({
      name: "epp_prefix_hit_ratio",
      help: "Cached prefix blocks on the chosen endpoint / request blocks, per request with at least one block.",
      buckets: [0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1],
      registers: r,
    });
    this.predictedCachedTokens = new Counter({
      name: "epp_predicted_cached_tokens_total",
      help: "Prompt tokens kvpick expected the chosen pod to have cached (prefix blocks × block size).",
      registers: r,
    });
    this.actualCachedTokens = new Counter({
      name: "epp_actual_cached_tokens_total",
      help: "Prompt tokens the pod reported as cached (usage.prompt_tokens_details.cached_tokens).",
      registers: r,
    });
    this.cachedTokensError = new Histogram({
      name: "epp_cached_tokens_prediction_error_ratio",
      help: "(actual − predicted cached tokens) / prompt tokens, per request whose usage reported cached tokens.",
      buckets: [-1, -0.5, -0.25, -0.1, -0.01, 0, 0.01, 0.1, 0.25, 0.5, 1],
      registers: r,
    });
    this.endpointPicks = new Counter({
      name: "epp_endpoint_picks_total",
      help: "Requests routed to each endpoint.",
      labelNames: ["endpoint"],
      registers: r,
    });
    this.inflightRequests = new Gauge({
      name: "epp_inflight_requests",
      help: "Requests routed whose response has not finished.",
      registers: r,
    });
    this.extProc = new ExtProcMetrics(registry, { requests: this.requests, inflight: this.inflightRequests });
    this.cacheSignalMissing = new Counter({
      name: "epp_cache_signal_missing_total",
      help: "Requests routed on load alone because no block hashes could be computed, by reason.",
      labelNames: ["reason"],
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

    this.tokenization = new TokenizationMetrics(registry);

    this.kvEventsReceived = new Counter({
      name: "epp_kv_event_batches_received_total",
      help: "KV-event batches (ZeroMQ messages) received, per pod.",
      labelNames: ["pod"],
      registers: r,
    });
    this.kvEventsApplied = new Counter({
      name: "epp_kv_events_applied_total",
      help: "KV events applied to the index, per pod and event type.",
      labelNames: ["pod", "type"],
      registers: r,
    });
    this.kvEventsMalformed = new Counter({
      name: "epp_kv_events_malformed_total",
      help: "Messages or events dropped as malformed, by reason (frames, seq, payload, event, topic, ...).",
      labelNames: ["pod", "reason"],
      registers: r,
    });
    this.kvEventsUnknown = new Counter({
      name: "epp_kv_events_unknown_total",
      help: "Tolerated unknowns: event tags kvpick does not know, extra fields (kind = tag | field).",
      labelNames: ["pod", "kind"],
      registers: r,
    });
    this.kvSeqGaps = new Counter({
      name: "epp_kv_event_seq_gaps_total",
      help: "Times a pod's sequence number jumped forward (batches were lost).",
      labelNames: ["pod"],
      registers: r,
    });
    this.kvSeqMissedBatches = new Counter({
      name: "epp_kv_event_missed_batches_total",
      help: "Batches lost in sequence gaps (sum of the jump sizes).",
      labelNames: ["pod"],
      registers: r,
    });
    this.kvPublisherRestarts = new Counter({
      name: "epp_kv_event_publisher_restarts_total",
      help: "Times a pod's sequence number went backwards (vLLM restarted); the pod was cleared.",
      labelNames: ["pod"],
      registers: r,
    });
    this.kvPodStale = new Gauge({
      name: "epp_kv_pod_state_stale",
      help: "1 while a pod's index state may be incomplete (events were lost), else 0.",
      labelNames: ["pod"],
      registers: r,
    });
    this.kvHashMismatches = new Counter({
      name: "epp_kv_block_hash_mismatches_total",
      help: "Root BlockStored events whose hash differs from kvpick's own (hash seed / block size / algo mismatch).",
      labelNames: ["pod"],
      registers: r,
    });
    this.kvTokenKeys = new Gauge({
      name: "epp_kv_pod_token_keys",
      help: "1 while a pod's blocks are indexed by kvpick's own keys over token_ids (kvEvents.keys), 0 by its hashes.",
      labelNames: ["pod"],
      registers: r,
    });
    this.kvTokenKeysSkipped = new Counter({
      name: "epp_kv_token_key_blocks_skipped_total",
      help: "Stored blocks not indexed by token keys (reason = unknown-parent | block-size | block-size-unknown | no-tokens).",
      labelNames: ["pod", "reason"],
      registers: r,
    });
    this.kvApplySeconds = new Histogram({
      name: "epp_kv_event_apply_duration_seconds",
      help: "Time to apply one event batch to the index.",
      buckets: APPLY_BUCKETS,
      registers: r,
    });
    this.kvLastEventTimestamp = new Gauge({
      name: "epp_kv_last_event_timestamp_seconds",
      help: "Wall-clock time of the last batch received from a pod (alert when it stops moving).",
      labelNames: ["pod"],
      registers: r,
    });
    // No pod label: the pod id of a rejected message is chosen by whoever sent it.
    this.kvEventsRejected = new Counter({
      name: "epp_kv_events_rejected_total",
      help: "KV-event messages ignored, by reason (not-in-pool: the topic names no pod of the current pool).",
      labelNames: ["reason"],
      registers: r,
    });
    this.kvReplays = new Counter({
      name: "epp_kv_replays_total",
      help: "KV-event replays from a pod's vLLM replay socket, by result (complete | incomplete | truncated: ended without its end marker, resumed | timeout | failed | cooldown).",
      labelNames: ["pod", "result"],
      registers: r,
    });
    this.kvReplayedBatches = new Counter({
      name: "epp_kv_replayed_batches_total",
      help: "Batches recovered by replay and applied to the index.",
      labelNames: ["pod"],
      registers: r,
    });
    this.kvReplaysRunning = new Gauge({
      name: "epp_kv_replays_in_flight",
      help: "Replays running now (bounded by kvEvents.maxConcurrentReplays).",
      registers: r,
    });
    this.kvHeldDropped = new Counter({
      name: "epp_kv_held_batches_dropped_total",
      help: "Live batches dropped while their pod replayed (kvEvents.maxHeldBatches reached).",
      labelNames: ["pod"],
      registers: r,
    });
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

  /** Speculative prefix entries (scheduling/speculative), read at scrape time. */
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
    const r = [this.registry];
    const read = (key: keyof ReturnType<typeof source.stats>) =>
      function (this: Gauge) {
        this.set(source.stats()[key]);
      };
    const gauge = (name: string, help: string, key: keyof ReturnType<typeof source.stats>) =>
      new Gauge({ name, help, registers: r, collect: read(key) });
    gauge(
      "epp_speculative_entries",
      "Live speculative (pod, block) entries: routed, not yet expired.",
      "entries",
    );
    gauge("epp_speculative_entries_added_total", "Speculative entries created (monotonic).", "added");
    gauge(
      "epp_speculative_hits_total",
      "Prefix lookups in which a speculative entry lengthened a candidate's cached prefix (monotonic).",
      "hits",
    );
    gauge(
      "epp_speculative_confirmed_total",
      "Speculative entries vLLM had reported (BlockStored) by the time they expired (monotonic).",
      "confirmed",
    );
    gauge(
      "epp_speculative_expired_total",
      "Speculative entries that expired unconfirmed: the pod never reported the block (monotonic).",
      "expired",
    );
    gauge(
      "epp_speculative_evicted_total",
      "Speculative entries dropped before their TTL by scheduling.speculativeMaxEntries (monotonic).",
      "evicted",
    );
  }
}
