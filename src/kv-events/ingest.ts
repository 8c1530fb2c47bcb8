// One ZeroMQ message from a vLLM publisher → the block index. Validates the three frames, decodes the
// whole batch before touching the index (so bad bytes change nothing), tracks sequence numbers per
// publisher, then applies the batch synchronously: JS being single-threaded, a reader (matchPrefix) can
// never observe half a batch. Never throws: everything unexpected is counted and logged, rate-limited.
import type { BlockIndex } from "../kv-index/block-index.js";
import type { Logger } from "../observability/logger.js";
import { RateLimitedLog } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { DecodeError, decodeBatch, type KvEvent, type KvEventBatch } from "./decode.js";
import { HashCheck, type HashCheckConfig } from "./hash-check.js";
import type { IndexMirror } from "./index-mirror.js";
import { PodState, type PodStateView } from "./pod-state.js";

export type { HashCheckConfig, PodStateView };

/** Label for messages whose pod cannot be named (bad topic): keeps label cardinality bounded. */
export const UNKNOWN_POD = "unknown";
const MAX_POD_ID = 256;

export interface KvEventIngestOptions {
  index: BlockIndex;
  logger: Logger;
  metrics: Metrics;
  hash: HashCheckConfig;
  /** Told of every change after it is applied locally (the optional shared index in Redis). */
  mirror?: IndexMirror | undefined;
}

/** `kv@<pod>@<model>` (llm-d convention; `<pod>` is an IP or ip:port). Any prefix before the first '@'. */
export function parseTopic(topic: string): { pod: string; model: string } | null {
  const a = topic.indexOf("@");
  if (a < 0) return null;
  const b = topic.indexOf("@", a + 1);
  const pod = b < 0 ? topic.slice(a + 1) : topic.slice(a + 1, b);
  if (pod.length === 0 || pod.length > MAX_POD_ID) return null;
  return { pod, model: b < 0 ? "" : topic.slice(b + 1) };
}

const utf8 = new TextDecoder("utf-8");

export class KvEventIngest {
  readonly #index: BlockIndex;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  readonly #hashCheck: HashCheck;
  readonly #mirror: IndexMirror | null;
  readonly #states = new Map<string, PodState>();
  readonly #rate = new RateLimitedLog(10_000);

  constructor(options: KvEventIngestOptions) {
    this.#index = options.index;
    this.#log = options.logger;
    this.#metrics = options.metrics;
    this.#hashCheck = new HashCheck(options.hash, options.logger, options.metrics);
    this.#mirror = options.mirror ?? null;
  }

  /**
   * Handles one multipart message. `connectPod` is the pod this socket was opened for (connect mode); it
   * wins over the topic's pod. In bind mode (null) the pod comes from the topic.
   */
  handleMessage(frames: readonly Uint8Array[], connectPod: string | null = null): void {
    let pod = connectPod ?? UNKNOWN_POD;
    try {
      const topic =
        frames.length > 0 && frames[0]!.length <= 1024 ? parseTopic(utf8.decode(frames[0])) : null;
      if (connectPod === null && topic !== null) pod = topic.pod;
      const problem = this.#receive(frames, pod, connectPod !== null || topic !== null, topic?.model ?? null);
      if (problem !== null) this.#malformed(pod, problem[0], problem[1]);
    } catch (err) {
      // A bug of ours, not bad input: still never let one message take the subscriber down.
      this.#malformed(pod, "internal", err instanceof Error ? err.message : String(err));
    }
  }

  /** Validates, decodes and applies; returns [reason, detail] when the message must be dropped. */
  #receive(
    frames: readonly Uint8Array[],
    pod: string,
    named: boolean,
    model: string | null,
  ): [string, string] | null {
    if (frames.length !== 3) return ["frames", `${frames.length} frames, expected 3`];
    if (!named) return ["topic", "topic is not kv@<pod>@<model>"];
    const seqFrame = frames[1]!;
    if (seqFrame.length !== 8) return ["seq", `${seqFrame.length}-byte sequence frame`];
    const seq = new DataView(seqFrame.buffer, seqFrame.byteOffset, 8).getBigUint64(0);
    let batch: KvEventBatch;
    try {
      batch = decodeBatch(frames[2]!);
    } catch (err) {
      if (err instanceof DecodeError) return ["payload", err.message];
      throw err;
    }
    this.#accept(pod, model, seq, batch);
    return null;
  }

  /** Forgets a pod (it left the pool): clears its index entries and its sequence state. */
  forgetPod(podId: string): void {
    this.#index.clearPod(podId);
    this.#mirror?.podCleared(podId);
    this.#hashCheck.forget(podId);
    if (this.#states.delete(podId)) {
      this.#metrics.kvPodStale.remove({ pod: podId });
      this.#metrics.kvLastEventTimestamp.remove({ pod: podId });
    }
  }

  /** Per-pod diagnostics (last event, sequence numbers per DP rank, stale flag, hash checks). */
  podStates(): PodStateView[] {
    return [...this.#states.values()].map((s) => s.view(this.#hashCheck.stats(s.podId)));
  }

  #accept(pod: string, model: string | null, seq: bigint, batch: KvEventBatch): void {
    const m = this.#metrics;
    let state = this.#states.get(pod);
    if (state === undefined) {
      state = new PodState(pod, m);
      this.#states.set(pod, state);
    }
    state.received.inc();
    state.lastEventMs = Date.now();
    state.lastEventGauge.set(state.lastEventMs / 1000);
    if (model !== null) state.model = model;
    if (batch.unknownTags > 0) m.kvEventsUnknown.inc({ pod, kind: "tag" }, batch.unknownTags);
    if (batch.extraFields > 0) m.kvEventsUnknown.inc({ pod, kind: "field" }, batch.extraFields);

    const started = performance.now();
    const verdict = state.trackSeq(batch.dataParallelRank, seq);
    if (verdict.kind === "gap") {
      m.kvSeqGaps.inc({ pod });
      m.kvSeqMissedBatches.inc({ pod }, verdict.missed);
      state.setStale(true);
      this.#warn(pod, "gap", "kv-event sequence gap: batches lost, pod state may be stale", {
        rank: batch.dataParallelRank,
        missed: verdict.missed,
      });
    } else if (verdict.kind === "restart") {
      // vLLM restarts at seq 0 with an empty cache and sends no AllBlocksCleared.
      m.kvPublisherRestarts.inc({ pod });
      this.#index.clearPod(pod);
      this.#mirror?.podCleared(pod);
      state.setStale(seq !== 0n);
      this.#log.info(
        { pod, rank: batch.dataParallelRank, seq: seq.toString() },
        "kv-event publisher restarted: pod cleared",
      );
    }
    for (const ev of batch.events) this.#apply(pod, state, ev);
    m.kvApplySeconds.observe((performance.now() - started) / 1000);
  }

  #apply(pod: string, state: PodState, ev: KvEvent): void {
    if (ev.type === "AllBlocksCleared") {
      this.#index.clearPod(pod);
      this.#mirror?.podCleared(pod);
      state.setStale(false); // a reset is a full, known state again
      state.appliedCleared.inc();
      return;
    }
    if (!indexable(ev, state.fullAttentionGroups)) {
      this.#metrics.kvEventsUnknown.inc({ pod, kind: "group" });
      return;
    }
    // Before v0.10.2 events carry no medium: only the GPU pool published.
    const medium = ev.medium ?? "GPU";
    const words = new Uint32Array(
      ev.blockHashes.buffer,
      ev.blockHashes.byteOffset,
      ev.blockHashes.length * 2,
    );
    if (ev.type === "BlockStored") {
      this.#hashCheck.check(pod, ev);
      this.#index.store(pod, medium, words, ev.blockHashes.length);
      this.#mirror?.touched(pod, medium, words, ev.blockHashes.length);
      state.appliedStored.inc();
    } else {
      this.#index.remove(pod, medium, words, ev.blockHashes.length);
      this.#mirror?.touched(pod, medium, words, ev.blockHashes.length);
      state.appliedRemoved.inc();
    }
  }

  #malformed(pod: string, reason: string, detail: string): void {
    this.#metrics.kvEventsMalformed.inc({ pod, reason });
    this.#warn(pod, `malformed:${reason}`, "kv-event message dropped", { reason, detail });
  }

  #warn(pod: string, key: string, msg: string, fields: Record<string, unknown>): void {
    const suppressed = this.#rate.admit(`${key}|${pod}`);
    if (suppressed >= 0) this.#log.warn({ pod, ...fields, suppressed }, msg);
  }
}

/**
 * Hybrid models publish one event per KV-cache group. Only full-attention groups describe a reusable
 * prefix the way kvpick's chain does: index BlockStored events whose spec kind (when sent) is full
 * attention / MLA, remembering their group so the matching BlockRemoved (which carries no spec kind) is
 * indexed too; without a spec kind, only group 0 (single-group models always send 0 or nothing).
 */
function indexable(ev: Exclude<KvEvent, { type: "AllBlocksCleared" }>, fullGroups: Set<number>): boolean {
  if (ev.type === "BlockStored" && ev.kvCacheSpecKind !== null) {
    const full = ev.kvCacheSpecKind === "full_attention" || ev.kvCacheSpecKind.startsWith("mla");
    if (full && ev.groupIdx !== null && fullGroups.size < 64) fullGroups.add(ev.groupIdx);
    return full;
  }
  return ev.groupIdx === null || ev.groupIdx === 0 || fullGroups.has(ev.groupIdx);
}
