// What the KV-event path records, in its own words (observability/kv-events-metrics.ts turns it into the
// `epp_kv_*` families). Callers never see label names; per-pod recorders are made once per pod, so the
// per-message path never hashes labels.

/** The counters and gauges of one pod, made when kvpick first hears of it. */
export interface PodEventsRecorder {
  /** A batch (ZeroMQ message) arrived live. */
  received(): void;
  /** An event of this type was applied to the index. */
  applied(type: "BlockStored" | "BlockRemoved" | "AllBlocksCleared"): void;
  /** A batch recovered by replay was applied. */
  replayedBatch(): void;
  /** Wall-clock time of the last batch received (live or replayed). */
  lastEvent(nowMs: number): void;
  /** Whether the pod's state may hold blocks it no longer has (accuracy degraded). */
  stale(stale: boolean): void;
}

/** The token-key gauges as token-keys.ts records them (its internals are its own: the shape it uses). */
export interface TokenKeysMetrics {
  readonly kvTokenKeys: {
    set(labels: { pod: string }, value: number): void;
    remove(labels: { pod: string }): void;
  };
  readonly kvTokenKeysSkipped: { inc(labels: { pod: string; reason: string }, value?: number): void };
}

export type ReplayResult = "complete" | "incomplete" | "truncated" | "timeout" | "failed" | "cooldown";

export interface KvEventsRecorder {
  /** The pod's own recorder (made on first use, kept until `podLeft`). */
  pod(pod: string): PodEventsRecorder;
  /** The pod left the pool: its gauges go. */
  podLeft(pod: string): void;
  /** A message or event was dropped as malformed (`reason`: frames, seq, payload, topic, replay-…). */
  malformed(pod: string, reason: string): void;
  /** A message from a pod outside the pool was ignored (no pod label: the sender chooses it). */
  rejected(reason: "not-in-pool"): void;
  /** Tolerated unknowns: event tags, extra fields, KV-cache groups not indexed. */
  unknown(pod: string, kind: "tag" | "field" | "group", n?: number): void;
  /** The pod's sequence jumped forward over `missed` batches. */
  seqGap(pod: string, missed: bigint): void;
  /** The pod's sequence went backwards: its engine restarted. */
  publisherRestart(pod: string): void;
  /** A live batch was dropped while the pod replayed (kvEvents.maxHeldBatches). */
  heldDropped(pod: string): void;
  /** A root block's hash differed from kvpick's own. */
  hashMismatch(pod: string): void;
  /** A replay of the pod ended (or could not start). */
  replay(pod: string, result: ReplayResult): void;
  /** Replays running now. */
  replaysRunning(n: number): void;
  /** Time spent applying one batch (or one slice of a huge one). */
  applySeconds(seconds: number): void;
  readonly tokenKeys: TokenKeysMetrics;
}
