// One ZeroMQ message from a vLLM publisher → the block index. Validates the three frames, checks that the
// topic names a pod of the pool (bind mode), decodes the whole batch before touching the index (so bad bytes
// change nothing), orders batches per publisher by sequence number, then applies them synchronously: JS
// being single-threaded, a reader (matchPrefix) can never observe half a batch. Lost batches are recovered
// from the pod's replay socket when it has one (pod-replays.ts); ordering is sequencing.ts's. Never throws: everything unexpected is
// counted and logged, rate-limited.
// A payload of SLICED_DECODE_BYTES or more (a million-block BlockStored is ~10 MB) is decoded in slices
// (sliced-decode.ts) so it never holds the event loop in one go; handleMessage then returns a promise and
// the subscriber waits for it before the socket's next message, so every pod's order is kept.
// A replayed payload that large is decoded in slices too; the replay reads its next reply only after it.
import type { BlockIndex } from "../kv-index/block-index.js";
import type { Logger } from "../observability/logger.js";
import { RateLimitedLog } from "../observability/logger.js";
import type { KvEventsRecorder } from "./kv-events-recorder.js";
import { BatchApplier } from "./batch-applier.js";
import { DecodeError, decodeBatch, type KvEventBatch } from "./decode.js";
import { decodeBatchSliced, SLICED_DECODE_BYTES } from "./sliced-decode.js";
import { HashCheck, type HashCheckConfig } from "./hash-check.js";
import type { IndexMirror } from "./index-mirror.js";
import type { ReplaySettings } from "./pod-replays.js";
import type { PodStateView } from "./pod-state.js";
import { Sequencing } from "./sequencing.js";

export type { HashCheckConfig, PodStateView, ReplaySettings };

/** Label for messages whose pod cannot be named (bad topic): keeps label cardinality bounded. */
export const UNKNOWN_POD = "unknown";
const MAX_POD_ID = 256;

export interface KvEventIngestOptions {
  index: BlockIndex;
  logger: Logger;
  recorder: KvEventsRecorder;
  hash: HashCheckConfig;
  /** Told of every change after it is applied locally (the optional shared index in Redis). */
  mirror?: IndexMirror | undefined;
  /**
   * Bind mode: whether a topic's pod id ("ip" or "ip:port") belongs to the current pool. Messages of other
   * pods are counted (`epp_kv_events_rejected_total{reason="not-in-pool"}`) and ignored. Absent = any pod.
   */
  admit?: (podId: string) => boolean;
  /** Replay from the pods' vLLM replay sockets; absent = replay off. */
  replay?: ReplaySettings;
  /** A degraded pod without replay heals after this long without further loss (default 60 s). */
  healAfterMs?: number;
  now?: () => number;
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
  readonly #log: Logger;
  readonly #recorder: KvEventsRecorder;
  readonly #hashCheck: HashCheck;
  readonly #applier: BatchApplier;
  readonly #admit: ((podId: string) => boolean) | null;
  readonly #seq: Sequencing;
  readonly #rate = new RateLimitedLog(10_000);
  /** Sliced decodes under way; a pod forgotten meanwhile (or close) cancels its own. */
  readonly #decoding = new Set<{ pod: string; cancelled: boolean }>();

  constructor(options: KvEventIngestOptions) {
    this.#log = options.logger;
    this.#recorder = options.recorder;
    this.#hashCheck = new HashCheck(options.hash, options.logger, options.recorder);
    this.#applier = new BatchApplier(
      options.index,
      options.recorder,
      this.#hashCheck,
      options.mirror ?? null,
    );
    this.#admit = options.admit ?? null;
    this.#seq = new Sequencing({
      applier: this.#applier,
      logger: options.logger,
      recorder: options.recorder,
      replay: options.replay,
      healAfterMs: options.healAfterMs ?? 60_000,
      now: options.now ?? Date.now,
      decode: (pod, payload, cancelled) => this.#decodeReplayed(pod, payload, cancelled),
      hashStats: (pod) => this.#hashCheck.stats(pod),
      warn: (pod, key, msg, fields) => this.#warn(pod, key, msg, fields),
    });
  }

  /**
   * Handles one multipart message. `connectPod` is the pod this socket was opened for (connect mode); it
   * wins over the topic's pod. In bind mode (null) the pod comes from the topic. Returns a promise (never
   * rejected) when a huge payload is decoded in slices: the caller hands over the socket's next message
   * only once it settles. Otherwise the message is handled when this returns.
   */
  handleMessage(frames: readonly Uint8Array[], connectPod: string | null = null): Promise<void> | undefined {
    let pod = connectPod ?? UNKNOWN_POD;
    try {
      const topic =
        frames.length > 0 && frames[0]!.length <= 1024 ? parseTopic(utf8.decode(frames[0])) : null;
      if (connectPod === null && topic !== null) {
        if (this.#admit !== null && !this.#admit(topic.pod)) {
          this.#reject(topic.pod);
          return;
        }
        pod = topic.pod;
      }
      const problem = this.#receive(frames, pod, connectPod !== null || topic !== null, topic?.model ?? null);
      if (problem instanceof Promise) {
        const named = pod;
        return problem.then(
          (p) => {
            if (p !== null) this.#malformed(named, p[0], p[1]);
          },
          (err: unknown) =>
            this.#malformed(named, "internal", err instanceof Error ? err.message : String(err)),
        );
      }
      if (problem !== null) this.#malformed(pod, problem[0], problem[1]);
    } catch (err) {
      // A bug of ours, not bad input: still never let one message take the subscriber down.
      this.#malformed(pod, "internal", err instanceof Error ? err.message : String(err));
    }
    return undefined;
  }

  /** Connect mode: the pod's socket (re)connected. Replays what it may have missed (from 0 if nothing yet). */
  connected(podId: string): void {
    this.#seq.connected(podId);
  }

  /** Forgets a pod (it left the pool): clears its index entries and its sequence state. */
  forgetPod(podId: string): void {
    // A batch still decoding was sent before the pod left: it must not land after the clear.
    for (const job of this.#decoding) if (job.pod === podId) job.cancelled = true;
    this.#applier.clearPod(podId);
    this.#hashCheck.forget(podId);
    if (this.#seq.forget(podId)) {
      this.#recorder.podLeft(podId);
    }
  }

  /** Per-pod diagnostics (last event, sequence numbers per DP rank, accuracy, hash checks), heard pods only. */
  podStates(): PodStateView[] {
    return this.#seq.podStates();
  }

  /**
   * Whether the pod has published any batch (live or replayed) since kvpick first heard of it and has not
   * been forgotten since (it left the pool): the PrefixLookup's `eventDriven`. Cheap: one map lookup.
   */
  published(podId: string): boolean {
    return this.#seq.published(podId);
  }

  /** Whether a pod of the pool names `model` in its KV-event topic (`kv@<pod>@<model>`): a served model. */
  announcesModel(model: string): boolean {
    return this.#seq.announcesModel(model);
  }

  /** exact | degraded for a pod that published, null for a pod never heard of. */
  accuracy(podId: string): "exact" | "degraded" | null {
    return this.#seq.accuracy(podId);
  }

  /** Replays running and waiting now, and the most ever running at once; null with replay off. */
  replayStats(): { running: number; waiting: number; peakRunning: number } | null {
    const q = this.#seq.replayQueue;
    return q === null ? null : { running: q.running, waiting: q.waiting, peakRunning: q.peakRunning };
  }

  /** Waits for running replays after aborting every one (shutdown). */
  async close(): Promise<void> {
    for (const job of this.#decoding) job.cancelled = true;
    await this.#seq.close();
  }

  /** Validates, decodes and applies; returns [reason, detail] when the message must be dropped. */
  #receive(
    frames: readonly Uint8Array[],
    pod: string,
    named: boolean,
    model: string | null,
  ): [string, string] | null | Promise<[string, string] | null> {
    if (frames.length !== 3) return ["frames", `${frames.length} frames, expected 3`];
    if (!named) return ["topic", "topic is not kv@<pod>@<model>"];
    const seqFrame = frames[1]!;
    if (seqFrame.length !== 8) return ["seq", `${seqFrame.length}-byte sequence frame`];
    const seq = new DataView(seqFrame.buffer, seqFrame.byteOffset, 8).getBigUint64(0);
    if (frames[2]!.length >= SLICED_DECODE_BYTES) return this.#receiveSliced(pod, model, seq, frames[2]!);
    let batch: KvEventBatch;
    try {
      batch = decodeBatch(frames[2]!);
    } catch (err) {
      if (err instanceof DecodeError) return ["payload", err.message];
      throw err;
    }
    this.#seq.live(pod, model, seq, batch);
    return null;
  }

  /** #receive's decode and apply for a huge payload, the decode spread over event-loop turns. */
  async #receiveSliced(
    pod: string,
    model: string | null,
    seq: bigint,
    payload: Uint8Array,
  ): Promise<[string, string] | null> {
    const job = { pod, cancelled: false };
    this.#decoding.add(job);
    try {
      const batch = await decodeBatchSliced(payload, () => job.cancelled);
      if (batch !== null && !job.cancelled) this.#seq.live(pod, model, seq, batch);
      return null;
    } catch (err) {
      if (err instanceof DecodeError) return ["payload", err.message];
      throw err;
    } finally {
      this.#decoding.delete(job);
    }
  }

  /** A replayed payload: decoded here so bad bytes are counted like live ones; a huge one in slices. */
  #decodeReplayed(
    pod: string,
    payload: Uint8Array,
    cancelled: () => boolean,
  ): KvEventBatch | null | Promise<KvEventBatch | null> {
    if (payload.length >= SLICED_DECODE_BYTES) return this.#decodeReplayedSliced(pod, payload, cancelled);
    try {
      return decodeBatch(payload);
    } catch (err) {
      this.#malformed(pod, "replay-payload", err instanceof Error ? err.message : String(err));
      return null;
    }
  }

  async #decodeReplayedSliced(
    pod: string,
    payload: Uint8Array,
    cancelled: () => boolean,
  ): Promise<KvEventBatch | null> {
    const job = { pod, cancelled: false };
    this.#decoding.add(job);
    try {
      const batch = await decodeBatchSliced(payload, () => job.cancelled || cancelled());
      return job.cancelled || cancelled() ? null : batch;
    } catch (err) {
      this.#malformed(pod, "replay-payload", err instanceof Error ? err.message : String(err));
      return null;
    } finally {
      this.#decoding.delete(job);
    }
  }

  #reject(pod: string): void {
    this.#recorder.rejected("not-in-pool");
    // One key for every rejected pod: their ids are chosen by the sender.
    const suppressed = this.#rate.admit("reject|not-in-pool");
    if (suppressed >= 0)
      this.#log.warn(
        { pod: pod.slice(0, 64), suppressed },
        "kv-event message from a pod outside the pool ignored (kvEvents.acceptUnknownPods=false)",
      );
  }

  #malformed(pod: string, reason: string, detail: string): void {
    this.#recorder.malformed(pod, reason);
    this.#warn(pod, `malformed:${reason}`, "kv-event message dropped", { reason, detail });
  }

  #warn(pod: string, key: string, msg: string, fields: Record<string, unknown>): void {
    const suppressed = this.#rate.admit(`${key}|${pod}`);
    if (suppressed >= 0) this.#log.warn({ pod, ...fields, suppressed }, msg);
  }
}
