// How far one pod's entries in the index can be trusted (peers' EXACT / DEGRADED / FALLBACK modes):
// - exact:     events flowing, nothing lost since kvpick's state for the pod began;
// - degraded:  batches were lost after kvpick knew the pod's state, so the index may hold blocks the pod
//              has since evicted (a missed BlockRemoved) — a gap not (yet) replayed, a replay that failed or
//              came back incomplete, live batches dropped while replaying — or the pod's block hashes differ
//              from kvpick's (hash seed / block size / algo mismatch);
// - no-events: a pool member that never published (decided by the caller: such a pod has no state here).
// Lost history BEFORE kvpick's first batch of a pod (kvpick started late, a publisher restart seen at
// seq > 0) only hides blocks, never invents them, so it does not degrade the pod.
// Healing: a gap that replay fills degrades the pod only while the replay runs; a loss that was not
// recovered heals after `healAfterMs` with at least one gap-free batch since — vLLM evicts least recently used blocks first, so what a gap
// hid is the coldest part of the cache, and the prefixes traffic uses again are re-stored (and their
// evictions reported) within a cache turnover (≈ 20 s for a Qwen3-32B pod at full prefill rate).

export type Accuracy = "exact" | "degraded" | "no-events";
export const ACCURACY_STATES: readonly Accuracy[] = ["exact", "degraded", "no-events"];

export type LossReason = "gap" | "replay-failed" | "replay-incomplete" | "replay-truncated" | "held-overflow";

export interface AccuracyTransition {
  to: "exact" | "degraded";
  /** Why it is degraded (the first active cause), or what healed it. */
  reason: string;
  /** True when the only cause was a gap being replayed right now (routine: logged at debug). */
  routine: boolean;
}

export class PodAccuracy {
  readonly #healAfterMs: number;
  #lossAt: number | null = null;
  #lossReason: LossReason | null = null;
  #batchesSinceLoss = 0;
  #recovering = 0;
  #hashMismatch = false;
  #truncated = 0;
  #reported: "exact" | "degraded" = "exact";
  #reportedReason = "";
  /** A non-routine cause was reported since the last exact: its healing is news too. */
  #loud = false;

  constructor(healAfterMs: number) {
    this.#healAfterMs = healAfterMs;
  }

  /** Batches were lost after known state (index may over-claim) and will not be recovered by replay. */
  loss(reason: LossReason, now: number): void {
    this.#lossAt = now;
    this.#lossReason = reason;
    this.#batchesSinceLoss = 0;
  }

  /** A replay of a gap started (+1) or ended (−1). */
  recovering(delta: 1 | -1): void {
    this.#recovering = Math.max(0, this.#recovering + delta);
  }

  /**
   * A replay ended without its end marker (timed out, or the ROUTER dropped its tail at the send high-water
   * mark): the applied prefix of the replay may hold stores whose removals are in the part that never came.
   * Degraded at once, idle or not, until each replay truncated (one per data-parallel rank) ended with its
   * marker or gave up (`truncated(-1)`).
   */
  truncated(delta: 1 | -1): void {
    this.#truncated = Math.max(0, this.#truncated + delta);
  }

  /** A batch was applied in order. */
  applied(): void {
    this.#batchesSinceLoss++;
  }

  /** Whether the pod's block hashes look incompatible with kvpick's (HashCheck.suspect). */
  hashSuspect(suspect: boolean): void {
    this.#hashMismatch = suspect;
  }

  /** The pod's cache was reset (AllBlocksCleared): whatever was lost before no longer matters. */
  clearLoss(): void {
    this.#lossAt = null;
    this.#lossReason = null;
  }

  /** The publisher restarted and the pod was cleared (its replays aborted): a fresh, known state. */
  reset(): void {
    this.clearLoss();
    this.#recovering = 0;
    this.#truncated = 0;
  }

  /** Current state; heals an old loss first. */
  state(now: number): "exact" | "degraded" {
    return this.#cause(now) === null ? "exact" : "degraded";
  }

  /** Why the pod is degraded now, or null when exact. */
  reason(now: number): string | null {
    return this.#cause(now);
  }

  /** The state changed since the last call (for one log line per transition), or null. */
  transition(now: number): AccuracyTransition | null {
    const cause = this.#cause(now);
    const to = cause === null ? "exact" : "degraded";
    if (to === this.#reported && (cause ?? "") === this.#reportedReason) return null;
    const wasDegraded = this.#reported === "degraded";
    const before = this.#reportedReason;
    this.#reported = to;
    this.#reportedReason = cause ?? "";
    if (to === "exact") {
      const routine = before === "replaying" && !this.#loud;
      this.#loud = false;
      return { to, reason: before, routine };
    }
    // A change of cause while degraded is logged only when it is news (not the routine replay ending).
    if (wasDegraded && cause === "replaying") return null;
    if (cause !== "replaying") this.#loud = true;
    return { to, reason: cause!, routine: cause === "replaying" };
  }

  #cause(now: number): string | null {
    if (this.#lossAt !== null && now - this.#lossAt >= this.#healAfterMs && this.#batchesSinceLoss > 0) {
      this.#lossAt = null;
      this.#lossReason = null;
    }
    if (this.#hashMismatch) return "hash-mismatch";
    if (this.#truncated > 0) return "replay-truncated";
    if (this.#lossReason !== null) return this.#lossReason;
    if (this.#recovering > 0) return "replaying";
    return null;
  }
}
