// One ZeroMQ message from a vLLM publisher → the block index. Validates the three frames, checks that the
// topic names a pod of the pool (bind mode), decodes the whole batch before touching the index (so bad bytes
// change nothing), orders batches per publisher by sequence number, then applies them synchronously: JS
// being single-threaded, a reader (matchPrefix) can never observe half a batch. Lost batches are recovered
// from the pod's replay socket when it has one (pod-replays.ts). Never throws: everything unexpected is
// counted and logged, rate-limited.
import type { BlockIndex } from "../kv-index/block-index.js";
import type { Logger } from "../observability/logger.js";
import { RateLimitedLog } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { BatchApplier } from "./batch-applier.js";
import { DecodeError, decodeBatch, type KvEventBatch } from "./decode.js";
import { HashCheck, type HashCheckConfig } from "./hash-check.js";
import type { IndexMirror } from "./index-mirror.js";
import type { LossReason } from "./pod-accuracy.js";
import { PodReplays, type ReplaySettings } from "./pod-replays.js";
import { type HeldBatch, PodState, type PodStateView } from "./pod-state.js";

export type { HashCheckConfig, PodStateView, ReplaySettings };

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

/** Where a batch comes from: the live socket (may start a replay), a replay reply, or the held queue. */
export type BatchSource = "live" | "replay" | "release";

/** What the replays that just ended left behind, for the held batches they release. */
interface ReleaseContext {
  /** Replays made progress and none failed: a gap among the held batches may be replayed again. */
  mayReplay: boolean;
  /**
   * The furthest seq the ended replays started from: with none failed, a gap among the held batches past it
   * is new loss on the wire even when they applied nothing (each new replay starts further on: no loop).
   */
  replayedFrom: bigint | null;
  /** Live batches were dropped while holding (kvEvents.maxHeldBatches). */
  dropped: boolean;
  /** A replay timed out or failed. */
  failed: boolean;
}

export class KvEventIngest {
  readonly #log: Logger;
  readonly #metrics: Metrics;
  readonly #hashCheck: HashCheck;
  readonly #applier: BatchApplier;
  readonly #admit: ((podId: string) => boolean) | null;
  readonly #replays: PodReplays | null;
  readonly #healAfterMs: number;
  readonly #now: () => number;
  readonly #states = new Map<string, PodState>();
  readonly #rate = new RateLimitedLog(10_000);

  constructor(options: KvEventIngestOptions) {
    this.#log = options.logger;
    this.#metrics = options.metrics;
    this.#hashCheck = new HashCheck(options.hash, options.logger, options.metrics);
    this.#applier = new BatchApplier(options.index, options.metrics, this.#hashCheck, options.mirror ?? null);
    this.#admit = options.admit ?? null;
    this.#healAfterMs = options.healAfterMs ?? 60_000;
    this.#now = options.now ?? Date.now;
    this.#replays =
      options.replay === undefined
        ? null
        : new PodReplays(options.replay, {
            logger: options.logger,
            metrics: options.metrics,
            now: this.#now,
            decode: (state, seq, payload) => this.#replayed(state, seq, payload),
            finished: (state) => this.#release(state),
            truncation: (state, what, fields) => this.#truncation(state, what, fields),
            warn: (pod, key, msg, fields) => this.#warn(pod, key, msg, fields),
          });
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
      if (connectPod === null && topic !== null) {
        if (this.#admit !== null && !this.#admit(topic.pod)) {
          this.#reject(topic.pod);
          return;
        }
        pod = topic.pod;
      }
      const problem = this.#receive(frames, pod, connectPod !== null || topic !== null, topic?.model ?? null);
      if (problem !== null) this.#malformed(pod, problem[0], problem[1]);
    } catch (err) {
      // A bug of ours, not bad input: still never let one message take the subscriber down.
      this.#malformed(pod, "internal", err instanceof Error ? err.message : String(err));
    }
  }

  /** Connect mode: the pod's socket (re)connected. Replays what it may have missed (from 0 if nothing yet). */
  connected(podId: string): void {
    if (this.#replays === null) return;
    const state = this.#state(podId);
    const publishers = state.publishers();
    // Nothing heard yet (first connection, or the last replay failed): from 0, the socket's own rank.
    if (publishers.length === 0) {
      this.#replays.start(state, null, 0n, "connect");
      return;
    }
    for (const [rank, p] of publishers)
      this.#replays.start(state, rank, p.applied === null ? 0n : p.applied + 1n, "connect");
  }

  /** Forgets a pod (it left the pool): clears its index entries and its sequence state. */
  forgetPod(podId: string): void {
    this.#applier.clearPod(podId);
    this.#hashCheck.forget(podId);
    const state = this.#states.get(podId);
    if (state !== undefined) {
      state.abortReplays();
      this.#states.delete(podId);
      this.#metrics.kvPodStale.remove({ pod: podId });
      this.#metrics.kvLastEventTimestamp.remove({ pod: podId });
    }
  }

  /** Per-pod diagnostics (last event, sequence numbers per DP rank, accuracy, hash checks), heard pods only. */
  podStates(): PodStateView[] {
    const now = this.#now();
    const out: PodStateView[] = [];
    for (const s of this.#states.values()) {
      if (!s.published) continue; // a replay asked for on connect, nothing heard yet
      this.#sync(s, now);
      out.push(s.view(now, this.#hashCheck.stats(s.podId)));
    }
    return out;
  }

  /**
   * Whether the pod has published any batch (live or replayed) since kvpick first heard of it and has not
   * been forgotten since (it left the pool): the PrefixLookup's `eventDriven`. Cheap: one map lookup.
   */
  published(podId: string): boolean {
    return this.#states.get(podId)?.published === true;
  }

  /** Whether a pod of the pool names `model` in its KV-event topic (`kv@<pod>@<model>`): a served model. */
  announcesModel(model: string): boolean {
    for (const s of this.#states.values()) if (s.model === model) return true;
    return false;
  }

  /** exact | degraded for a pod that published, null for a pod never heard of. */
  accuracy(podId: string): "exact" | "degraded" | null {
    const s = this.#states.get(podId);
    if (s === undefined || !s.published) return null;
    return this.#sync(s, this.#now());
  }

  /** Replays running and waiting now, and the most ever running at once; null with replay off. */
  replayStats(): { running: number; waiting: number; peakRunning: number } | null {
    const q = this.#replays?.queue;
    return q === undefined ? null : { running: q.running, waiting: q.waiting, peakRunning: q.peakRunning };
  }

  /** Waits for running replays after aborting every one (shutdown). */
  async close(): Promise<void> {
    for (const s of this.#states.values()) s.abortReplays();
    await this.#replays?.close();
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
    this.#live(pod, model, seq, batch);
    return null;
  }

  #state(pod: string): PodState {
    let state = this.#states.get(pod);
    if (state === undefined) {
      state = new PodState(pod, this.#metrics, this.#healAfterMs);
      this.#states.set(pod, state);
    }
    return state;
  }

  #live(pod: string, model: string | null, seq: bigint, batch: KvEventBatch): void {
    const state = this.#state(pod);
    state.received.inc();
    state.heard(this.#now());
    if (model !== null) state.model = model;
    const rank = batch.dataParallelRank;
    const p = state.publisher(rank);
    // The live stream of one publisher only goes up: anything else is a restarted engine.
    if (p.lastLive !== null && seq <= p.lastLive) this.#restart(state, rank, seq);
    p.lastLive = seq;
    if (state.runs.size > 0) this.#hold(state, { rank, seq, batch });
    else this.#ordered(state, rank, seq, batch, "live");
  }

  /**
   * Applies a batch in sequence order: duplicates are skipped; a jump is replayed when it may be (live
   * batches, and held ones after a replay that made progress), else recorded as a loss.
   */
  #ordered(
    state: PodState,
    rank: number | null,
    seq: bigint,
    batch: KvEventBatch,
    from: BatchSource,
    release: ReleaseContext | null = null,
  ): void {
    const p = state.publisher(rank);
    if (p.applied !== null && seq <= p.applied) return; // already applied (replayed, then received live)
    const expected = p.applied === null ? 0n : p.applied + 1n;
    if (seq > expected) {
      // Before any applied batch the jump is lost history (kvpick joined late): it hides blocks, never
      // invents them. After it, missed BlockRemoved events may leave blocks the pod no longer has.
      const afterKnown = p.applied !== null;
      // A gap among held batches after a replay that made progress is new loss on the wire (the replay
      // has moved past it): it may be replayed too. Without progress it could loop, so it may not.
      const mayReplay =
        from === "live" ||
        (from === "release" &&
          (release!.mayReplay ||
            (!release!.failed && release!.replayedFrom !== null && expected > release!.replayedFrom)));
      if (mayReplay && afterKnown) {
        const missed = seq - expected;
        this.#metrics.kvSeqGaps.inc({ pod: state.podId });
        this.#metrics.kvSeqMissedBatches.inc(
          { pod: state.podId },
          missed > 2n ** 53n ? Number.MAX_SAFE_INTEGER : Number(missed),
        );
      }
      if (mayReplay && this.#replays?.start(state, rank, expected, afterKnown ? "gap" : "joined")) {
        this.#hold(state, { rank, seq, batch });
        return;
      }
      if (afterKnown) {
        const reason: LossReason =
          from === "live"
            ? "gap"
            : from === "replay"
              ? "replay-incomplete"
              : release!.dropped
                ? "held-overflow"
                : release!.failed
                  ? "replay-failed"
                  : "replay-incomplete";
        this.#loss(state, reason, { rank, expected: expected.toString(), seq: seq.toString() });
      }
    }
    this.#applier.apply(state, batch);
    p.applied = seq;
    state.accuracy.applied();
    if (from === "replay") {
      state.replayedBatches.inc();
      state.replayProgress++;
    }
    this.#sync(state, this.#now());
  }

  #hold(state: PodState, held: HeldBatch): void {
    if (state.held.length >= this.#replays!.maxHeldBatches) {
      state.heldDropped++;
      this.#metrics.kvHeldDropped.inc({ pod: state.podId });
      return;
    }
    state.held.push(held);
  }

  /** Every replay of the pod ended: applies the held live batches in arrival order. */
  #release(state: PodState): void {
    const held = state.held;
    const ctx: ReleaseContext = {
      mayReplay: state.replayProgress > 0 && !state.replayFailed,
      dropped: state.heldDropped > 0,
      failed: state.replayFailed,
      replayedFrom: state.replayedFrom,
    };
    state.held = [];
    state.replayedFrom = null;
    state.heldDropped = 0;
    state.replayFailed = false;
    state.replayProgress = 0;
    for (const h of held) {
      if (state.runs.size > 0)
        state.held.push(h); // a new gap is being replayed: keep holding, in order
      else this.#ordered(state, h.rank, h.seq, h.batch, "release", ctx);
    }
    this.#sync(state, this.#now());
  }

  /** One replayed batch (decoded here so bad bytes are counted like live ones). */
  #replayed(state: PodState, seq: bigint, payload: Uint8Array): void {
    let batch: KvEventBatch;
    try {
      batch = decodeBatch(payload);
    } catch (err) {
      this.#malformed(state.podId, "replay-payload", err instanceof Error ? err.message : String(err));
      return;
    }
    state.heard(this.#now());
    this.#ordered(state, batch.dataParallelRank, seq, batch, "replay");
  }

  /** A replay lost its tail (see PodReplays): degraded at once, exact again once a resumed one completes. */
  #truncation(
    state: PodState,
    what: "begun" | "healed" | "abandoned",
    fields: Record<string, unknown>,
  ): void {
    const now = this.#now();
    state.accuracy.truncated(what === "begun" ? 1 : -1);
    if (what === "abandoned") state.accuracy.loss("replay-truncated", now);
    this.#sync(state, now, fields);
  }

  /** vLLM restarts at seq 0 with an empty cache and sends no AllBlocksCleared: forget the pod's blocks. */
  #restart(state: PodState, rank: number | null, seq: bigint): void {
    this.#metrics.kvPublisherRestarts.inc({ pod: state.podId });
    state.abortReplays();
    this.#applier.clearPod(state.podId);
    const p = state.publisher(rank);
    p.applied = null;
    p.lastLive = null;
    state.accuracy.reset();
    this.#log.info(
      { pod: state.podId, rank, seq: seq.toString() },
      "kv-event publisher restarted: pod cleared",
    );
  }

  #loss(state: PodState, reason: LossReason, fields: Record<string, unknown> = {}): void {
    state.accuracy.loss(reason, this.#now());
    this.#sync(state, this.#now(), fields);
  }

  /** Brings the stale gauge and the log in line with the pod's accuracy; returns it. */
  #sync(state: PodState, now: number, fields: Record<string, unknown> = {}): "exact" | "degraded" {
    const t = state.accuracy.transition(now);
    if (t !== null) {
      state.setStale(t.to === "degraded");
      const f = { pod: state.podId, accuracy: t.to, reason: t.reason, ...fields };
      if (t.routine) this.#log.debug(f, "kv-event state: replaying a gap");
      else if (t.to === "degraded")
        this.#log.warn(f, "kv-event state degraded: the pod's cached blocks count less until it recovers");
      else this.#log.info(f, "kv-event state exact again");
    }
    return state.stale ? "degraded" : "exact";
  }

  #reject(pod: string): void {
    this.#metrics.kvEventsRejected.inc({ reason: "not-in-pool" });
    // One key for every rejected pod: their ids are chosen by the sender.
    const suppressed = this.#rate.admit("reject|not-in-pool");
    if (suppressed >= 0)
      this.#log.warn(
        { pod: pod.slice(0, 64), suppressed },
        "kv-event message from a pod outside the pool ignored (kvEvents.acceptUnknownPods=false)",
      );
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
