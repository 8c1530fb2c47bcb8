// The `epp_kv_*` families of the KV-event path (kv-events/kv-events-recorder.ts says what is recorded).
// Per-pod label children are made once per pod; every series of a pod (gauges and counters) is removed when it
// leaves, so a fleet whose pods come and go (each rollout brings new pod addresses) does not grow /metrics
// without bound. A pod that comes back starts its counters at 0, which Prometheus' rate() reads as a reset.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type {
  KvEventsRecorder,
  PodEventsRecorder,
  ReplayResult,
  TokenKeysMetrics,
} from "../kv-events/kv-events-recorder.js";

// Apply latency of one event batch: most batches are a few events (µs), a pod clear can take ms.
const APPLY_BUCKETS = [1e-6, 5e-6, 2e-5, 1e-4, 5e-4, 2e-3, 1e-2, 5e-2, 0.25];

export class KvEventsMetrics implements KvEventsRecorder {
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
  readonly tokenKeys: TokenKeysMetrics = this;

  constructor(registry: Registry) {
    const r = [registry];
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

  pod(pod: string): PodEventsRecorder {
    const received = this.kvEventsReceived.labels({ pod });
    const stored = this.kvEventsApplied.labels({ pod, type: "BlockStored" });
    const removed = this.kvEventsApplied.labels({ pod, type: "BlockRemoved" });
    const cleared = this.kvEventsApplied.labels({
      pod,
      type: "AllBlocksCleared",
    });
    const replayed = this.kvReplayedBatches.labels({ pod });
    const lastEvent = this.kvLastEventTimestamp.labels({ pod });
    const stale = this.kvPodStale.labels({ pod });
    stale.set(0);
    return {
      received: () => received.inc(),
      applied: (type) =>
        (type === "BlockStored" ? stored : type === "BlockRemoved" ? removed : cleared).inc(),
      replayedBatch: () => replayed.inc(),
      lastEvent: (nowMs) => lastEvent.set(nowMs / 1000),
      stale: (s) => stale.set(s ? 1 : 0),
    };
  }

  podLeft(pod: string): void {
    for (const family of this.#perPod()) void dropSeriesOf(family, pod);
  }

  /** Every family labelled by pod. */
  #perPod(): Array<Counter<string> | Gauge<string>> {
    return [
      this.kvEventsReceived,
      this.kvEventsApplied,
      this.kvEventsMalformed,
      this.kvEventsUnknown,
      this.kvSeqGaps,
      this.kvSeqMissedBatches,
      this.kvPublisherRestarts,
      this.kvPodStale,
      this.kvHashMismatches,
      this.kvTokenKeys,
      this.kvTokenKeysSkipped,
      this.kvLastEventTimestamp,
      this.kvReplays,
      this.kvReplayedBatches,
      this.kvHeldDropped,
    ];
  }

  malformed(pod: string, reason: string): void {
    this.kvEventsMalformed.inc({ pod, reason });
  }

  rejected(reason: "not-in-pool"): void {
    this.kvEventsRejected.inc({ reason });
  }

  unknown(pod: string, kind: "tag" | "field" | "group", n = 1): void {
    this.kvEventsUnknown.inc({ pod, kind }, n);
  }

  seqGap(pod: string, missed: bigint): void {
    this.kvSeqGaps.inc({ pod });
    this.kvSeqMissedBatches.inc({ pod }, missed > 2n ** 53n ? Number.MAX_SAFE_INTEGER : Number(missed));
  }

  publisherRestart(pod: string): void {
    this.kvPublisherRestarts.inc({ pod });
  }

  heldDropped(pod: string): void {
    this.kvHeldDropped.inc({ pod });
  }

  hashMismatch(pod: string): void {
    this.kvHashMismatches.inc({ pod });
  }

  replay(pod: string, result: ReplayResult): void {
    this.kvReplays.inc({ pod, result });
  }

  replaysRunning(n: number): void {
    this.kvReplaysRunning.set(n);
  }

  applySeconds(seconds: number): void {
    this.kvApplySeconds.observe(seconds);
  }
}

/**
 * Removes every series of `family` whose `pod` label is `pod`, whatever its other labels. The families here
 * have no collect(), so `get()` reads the series in the same turn and the removal follows in the next
 * microtask: no event (and so no returning pod) can come in between.
 */
async function dropSeriesOf(family: Counter<string> | Gauge<string>, pod: string): Promise<void> {
  const { values } = await family.get();
  for (const { labels } of values) if (labels.pod === pod) family.remove(labels as Record<string, string>);
}
