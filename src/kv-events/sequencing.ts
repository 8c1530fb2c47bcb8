// Per-pod ordering of decoded KV-event batches: sequence numbers per publisher (DP rank), gaps, the live
// batches held while a replay runs and their release in arrival order, publisher restarts, and the pod's
// accuracy as it follows from all that. Owns the per-pod states (PodState); every write to them goes through
// here, PodReplays (the replays it starts) or the BatchApplier (what it applies).
import type { Logger } from "../observability/logger.js";
import type { KvEventsRecorder } from "./kv-events-recorder.js";
import type { BatchApplier } from "./batch-applier.js";
import type { KvEventBatch } from "./decode.js";
import type { LossReason } from "./pod-accuracy.js";
import { PodReplays, type ReplaySettings } from "./pod-replays.js";
import { type HeldRelease, PodState, type PodStateView } from "./pod-state.js";

/** Where a batch comes from: the live socket (may start a replay), a replay reply, or the held queue. */
export type BatchSource = "live" | "replay" | "release";

export interface SequencingOptions {
  applier: BatchApplier;
  logger: Logger;
  recorder: KvEventsRecorder;
  /** Replay from the pods' vLLM replay sockets; absent = replay off. */
  replay?: ReplaySettings | undefined;
  /** A degraded pod without replay heals after this long without further loss. */
  healAfterMs: number;
  now: () => number;
  /**
   * A replayed payload, decoded (null: malformed, counted by the caller, or `cancelled` turned true); a
   * promise when a huge one is decoded in slices.
   */
  decode(
    pod: string,
    payload: Uint8Array,
    cancelled: () => boolean,
  ): KvEventBatch | null | Promise<KvEventBatch | null>;
  /** The pod's hash-check figures, for its view. */
  hashStats(pod: string): { checks: number; mismatches: number };
  warn(pod: string, key: string, msg: string, fields: Record<string, unknown>): void;
}

export class Sequencing {
  readonly #o: SequencingOptions;
  readonly #log: Logger;
  readonly #replays: PodReplays | null;
  readonly #states = new Map<string, PodState>();

  constructor(options: SequencingOptions) {
    this.#o = options;
    this.#log = options.logger;
    this.#replays =
      options.replay === undefined
        ? null
        : new PodReplays(options.replay, {
            logger: options.logger,
            recorder: options.recorder,
            now: options.now,
            decode: (state, seq, payload, cancelled) => this.#replayed(state, seq, payload, cancelled),
            finished: (state) => this.#release(state),
            truncation: (state, what, fields) => this.#truncation(state, what, fields),
            warn: options.warn,
          });
  }

  /** One decoded live batch of the pod (its topic named `model`, when it did). */
  live(pod: string, model: string | null, seq: bigint, batch: KvEventBatch): void {
    const state = this.#state(pod);
    state.heard(this.#o.now(), model, true);
    const rank = batch.dataParallelRank;
    const p = state.publisher(rank);
    // The live stream of one publisher only goes up: anything else is a restarted engine.
    if (p.lastLive !== null && seq <= p.lastLive) this.#restart(state, rank, seq);
    p.lastLive = seq;
    if (state.replaying) this.#hold(state, rank, seq, batch);
    else this.#ordered(state, rank, seq, batch, "live");
  }

  /** The pod's socket (re)connected, or it joined: replays what it may have missed (from 0 if nothing yet). */
  connected(pod: string): void {
    if (this.#replays === null) return;
    const state = this.#state(pod);
    const publishers = state.publishers();
    // Nothing heard yet (first connection, or the last replay failed): from 0, the socket's own rank.
    if (publishers.length === 0) {
      this.#replays.start(state, null, 0n, "connect");
      return;
    }
    for (const [rank, p] of publishers)
      this.#replays.start(state, rank, p.applied === null ? 0n : p.applied + 1n, "connect");
  }

  /** Forgets the pod's sequence state and replays; false when there was none. */
  forget(pod: string): boolean {
    const state = this.#states.get(pod);
    if (state === undefined) return false;
    state.abortReplays();
    this.#states.delete(pod);
    return true;
  }

  podStates(): PodStateView[] {
    const now = this.#o.now();
    const out: PodStateView[] = [];
    for (const s of this.#states.values()) {
      if (!s.published) continue; // a replay asked for on connect, nothing heard yet
      this.#sync(s, now);
      out.push(s.view(now, this.#o.hashStats(s.podId)));
    }
    return out;
  }

  published(pod: string): boolean {
    return this.#states.get(pod)?.published === true;
  }

  announcesModel(model: string): boolean {
    for (const s of this.#states.values()) if (s.model === model) return true;
    return false;
  }

  accuracy(pod: string): "exact" | "degraded" | null {
    const s = this.#states.get(pod);
    if (s === undefined || !s.published) return null;
    return this.#sync(s, this.#o.now());
  }

  get replayQueue(): PodReplays["queue"] | null {
    return this.#replays?.queue ?? null;
  }

  /** Aborts every replay and waits for the running ones (shutdown). */
  async close(): Promise<void> {
    for (const s of this.#states.values()) s.abortReplays();
    await this.#replays?.close();
  }

  #state(pod: string): PodState {
    let state = this.#states.get(pod);
    if (state === undefined) {
      state = new PodState(pod, this.#o.recorder.pod(pod), this.#o.healAfterMs);
      this.#states.set(pod, state);
    }
    return state;
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
    release: HeldRelease | null = null,
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
        this.#o.recorder.seqGap(state.podId, seq - expected);
      }
      if (mayReplay && this.#replays?.start(state, rank, expected, afterKnown ? "gap" : "joined")) {
        this.#hold(state, rank, seq, batch);
        return;
      }
      if (afterKnown)
        this.#loss(state, lossReason(from, release), {
          rank,
          expected: expected.toString(),
          seq: seq.toString(),
        });
    }
    this.#o.applier.apply(state, batch);
    p.applied = seq;
    state.accuracy.applied();
    if (from === "replay") state.replayApplied();
    this.#sync(state, this.#o.now());
  }

  #hold(state: PodState, rank: number | null, seq: bigint, batch: KvEventBatch): void {
    if (!state.hold({ rank, seq, batch }, this.#replays!.maxHeldBatches))
      this.#o.recorder.heldDropped(state.podId);
  }

  /** Every replay of the pod ended: applies the held live batches in arrival order. */
  #release(state: PodState): void {
    const release = state.release();
    for (const h of release.held) {
      if (state.replaying)
        state.hold(h, Number.POSITIVE_INFINITY); // a new gap is being replayed: keep holding, in order
      else this.#ordered(state, h.rank, h.seq, h.batch, "release", release);
    }
    this.#sync(state, this.#o.now());
  }

  /** One replayed batch (decoded by the ingest so bad bytes are counted like live ones). */
  #replayed(
    state: PodState,
    seq: bigint,
    payload: Uint8Array,
    cancelled: () => boolean,
  ): void | Promise<void> {
    const batch = this.#o.decode(state.podId, payload, cancelled);
    if (batch instanceof Promise)
      return batch.then((b) => {
        if (b !== null && !cancelled()) this.#replayedBatch(state, seq, b);
      });
    if (batch !== null) this.#replayedBatch(state, seq, batch);
  }

  #replayedBatch(state: PodState, seq: bigint, batch: KvEventBatch): void {
    state.heard(this.#o.now(), null, false);
    this.#ordered(state, batch.dataParallelRank, seq, batch, "replay");
  }

  /** A replay lost its tail (see PodReplays): degraded at once, exact again once a resumed one completes. */
  #truncation(
    state: PodState,
    what: "begun" | "healed" | "abandoned",
    fields: Record<string, unknown>,
  ): void {
    const now = this.#o.now();
    state.accuracy.truncated(what === "begun" ? 1 : -1);
    if (what === "abandoned") state.accuracy.loss("replay-truncated", now);
    this.#sync(state, now, fields);
  }

  /** vLLM restarts at seq 0 with an empty cache and sends no AllBlocksCleared: forget the pod's blocks. */
  #restart(state: PodState, rank: number | null, seq: bigint): void {
    this.#o.recorder.publisherRestart(state.podId);
    state.abortReplays();
    this.#o.applier.clearPod(state.podId);
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
    state.accuracy.loss(reason, this.#o.now());
    this.#sync(state, this.#o.now(), fields);
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
}

/** Why a gap that is not replayed is a loss, by where its batch came from. */
function lossReason(from: BatchSource, release: HeldRelease | null): LossReason {
  if (from === "live") return "gap";
  if (from === "replay") return "replay-incomplete";
  if (release!.dropped) return "held-overflow";
  return release!.failed ? "replay-failed" : "replay-incomplete";
}
