// Per-pod bookkeeping of the KV-event stream: sequence numbers per publisher (one per data-parallel
// rank, each with its own counter), replays in flight and the live batches held meanwhile, the pod's
// accuracy, and its recorder (made once per pod, which keeps prom-client's label hashing off the per-message
// path).
import type { PodEventsRecorder } from "./kv-events-recorder.js";
import type { KvEventBatch } from "./decode.js";
import { type Accuracy, PodAccuracy } from "./pod-accuracy.js";

export interface PodStateView {
  podId: string;
  /** Model name from the topic (`kv@<pod>@<model>`); null until a topic named one. */
  model: string | null;
  /** Wall-clock ms of the last batch received (live or replayed; 0 = none yet). */
  lastEventMs: number;
  /** Last applied sequence number per data-parallel rank (null rank = the v0.9.0 layout), decimal. */
  publishers: { rank: number | null; lastSeq: string }[];
  /** True while the pod's state may hold blocks it no longer has (= accuracy "degraded"). */
  stale: boolean;
  accuracy: Exclude<Accuracy, "no-events">;
  /** Why it is degraded ("gap", "replaying", "replay-failed", "hash-mismatch", …), else null. */
  degradedReason: string | null;
  /** Replays of this pod waiting or running. */
  replays: number;
  /** Root BlockStored events whose first hash kvpick recomputed, and how many differed. */
  hashChecks: number;
  hashMismatches: number;
}

/** One publisher (data-parallel rank) of a pod. */
export interface PublisherSeq {
  /** Highest seq received live (the live stream only goes up, unless the publisher restarted). */
  lastLive: bigint | null;
  /** Highest seq applied to the index, live or replayed (null: nothing yet). */
  applied: bigint | null;
}

/** A live batch held while the pod replays. */
export interface HeldBatch {
  rank: number | null;
  seq: bigint;
  batch: KvEventBatch;
}

/** The held batches a release hands back, and what the replays that just ended left behind. */
export interface HeldRelease {
  held: HeldBatch[];
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

/** One replay of this pod (waiting or running). */
export interface ReplayRun {
  readonly controller: AbortController;
  /** Replay of a gap after known state (the pod is degraded while it runs). */
  readonly recovering: boolean;
  /** The seq it was asked from. */
  readonly start: bigint;
  /** A replayed seq jumped past the next expected one: the ring no longer had it. */
  hole: boolean;
  applied: number;
  /** An attempt ended without the end marker (the pod is degraded until one ends with it). */
  truncated: boolean;
  /** Attempts resumed after the last replayed batch. */
  resumes: number;
}

const NO_RANK = -1;

export class PodState {
  readonly podId: string;
  #model: string | null = null;
  #lastEventMs = 0;
  #published = false;
  /** KV-cache groups seen as full attention (hybrid models), so their removals are indexed too. */
  readonly fullAttentionGroups = new Set<number>();
  readonly accuracy: PodAccuracy;
  /** The pod's counters and gauges (made once per pod). */
  readonly recorder: PodEventsRecorder;
  readonly #runs = new Set<ReplayRun>();
  #held: HeldBatch[] = [];
  /** Live batches dropped because `held` was full, since the last release. */
  #heldDropped = 0;
  /** A replay since the last release timed out or failed. */
  #replayFailed = false;
  /** Batches applied by replays since the last release. */
  #replayProgress = 0;
  /** The furthest start of the replays ended since the last release (null: none). */
  #replayedFrom: bigint | null = null;
  #stale = false;
  readonly #seqs = new Map<number, PublisherSeq>();

  constructor(podId: string, recorder: PodEventsRecorder, healAfterMs: number) {
    this.podId = podId;
    this.accuracy = new PodAccuracy(healAfterMs);
    this.recorder = recorder;
  }

  get stale(): boolean {
    return this.#stale;
  }

  /** Model name from the topic (`kv@<pod>@<model>`); null until a topic named one. */
  get model(): string | null {
    return this.#model;
  }

  /**
   * A batch of this pod was received (live or replayed, applied or held): it is event-driven until it is
   * forgotten, whatever it holds (the estimated fallback never scores it again).
   */
  get published(): boolean {
    return this.#published;
  }

  /** Replays of this pod waiting or running: its live batches are held meanwhile. */
  get replaying(): boolean {
    return this.#runs.size > 0;
  }

  /** A replay of this pod was queued. */
  runStarted(run: ReplayRun): void {
    this.#runs.add(run);
    if (run.recovering) this.accuracy.recovering(1);
  }

  /** A replay of this pod ended; false when it was aborted before (the pod's state moved on without it). */
  runEnded(run: ReplayRun, failed: boolean): boolean {
    if (!this.#runs.delete(run)) return false;
    if (run.recovering) this.accuracy.recovering(-1);
    if (failed) this.#replayFailed = true;
    if (this.#replayedFrom === null || run.start > this.#replayedFrom) this.#replayedFrom = run.start;
    return true;
  }

  /** Holds a live batch while the pod replays; false (dropped, counted) past `max` held. */
  hold(held: HeldBatch, max: number): boolean {
    if (this.#held.length >= max) {
      this.#heldDropped++;
      return false;
    }
    this.#held.push(held);
    return true;
  }

  /** Hands back the held batches in arrival order with what the ended replays left behind; starts afresh. */
  release(): HeldRelease {
    const out: HeldRelease = {
      held: this.#held,
      mayReplay: this.#replayProgress > 0 && !this.#replayFailed,
      dropped: this.#heldDropped > 0,
      failed: this.#replayFailed,
      replayedFrom: this.#replayedFrom,
    };
    this.#clearHeld();
    return out;
  }

  /** A replayed batch was applied. */
  replayApplied(): void {
    this.recorder.replayedBatch();
    this.#replayProgress++;
  }

  /** The sequence state of the publisher of `rank` (created on first use). */
  publisher(rank: number | null): PublisherSeq {
    const key = rank ?? NO_RANK;
    let p = this.#seqs.get(key);
    if (p === undefined) {
      p = { lastLive: null, applied: null };
      this.#seqs.set(key, p);
    }
    return p;
  }

  publishers(): [number | null, PublisherSeq][] {
    return [...this.#seqs].map(([k, p]) => [k === NO_RANK ? null : k, p]);
  }

  /** A batch arrived (live or replayed), applied or held; a live one's topic may name the model. */
  heard(nowMs: number, model: string | null, live: boolean): void {
    if (live) this.recorder.received();
    if (model !== null) this.#model = model;
    this.#published = true;
    this.#lastEventMs = nowMs;
    this.recorder.lastEvent(nowMs);
  }

  /** Keeps `epp_kv_pod_state_stale` equal to "degraded". */
  setStale(stale: boolean): void {
    if (stale === this.#stale) return;
    this.#stale = stale;
    this.recorder.stale(stale);
  }

  /** Aborts every replay of this pod and forgets the batches held for it. */
  abortReplays(): void {
    for (const run of this.#runs) run.controller.abort();
    this.#runs.clear();
    this.#clearHeld();
  }

  #clearHeld(): void {
    this.#held = [];
    this.#heldDropped = 0;
    this.#replayFailed = false;
    this.#replayProgress = 0;
    this.#replayedFrom = null;
  }

  view(now: number, hash: { checks: number; mismatches: number }): PodStateView {
    const accuracy = this.accuracy.state(now);
    return {
      podId: this.podId,
      model: this.#model,
      lastEventMs: this.#lastEventMs,
      publishers: this.publishers().map(([rank, p]) => ({
        rank,
        lastSeq: (p.applied ?? p.lastLive ?? 0n).toString(),
      })),
      stale: accuracy === "degraded",
      accuracy,
      degradedReason: this.accuracy.reason(now),
      replays: this.#runs.size,
      hashChecks: hash.checks,
      hashMismatches: hash.mismatches,
    };
  }
}
