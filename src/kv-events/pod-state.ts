// Per-pod bookkeeping of the KV-event stream: sequence numbers per publisher (one per data-parallel
// rank, each with its own counter), staleness, and the pod's pre-labelled metric children (labelling
// once per pod keeps prom-client's label hashing off the per-message path).
import type { Metrics } from "../observability/metrics.js";

export type SeqVerdict = { kind: "first" | "next" | "restart" } | { kind: "gap"; missed: number };

export interface PodStateView {
  podId: string;
  /** Model name from the topic (`kv@<pod>@<model>`); null until a topic named one. */
  model: string | null;
  /** Wall-clock ms of the last accepted batch. */
  lastEventMs: number;
  /** Last sequence number per data-parallel rank (null rank = the v0.9.0 layout without one), decimal. */
  publishers: { rank: number | null; lastSeq: string }[];
  /** True after a sequence gap until the pod's state is known complete again (reset or restart at 0). */
  stale: boolean;
  /** Root BlockStored events whose first hash kvpick recomputed, and how many differed. */
  hashChecks: number;
  hashMismatches: number;
}

interface Inc {
  inc(value?: number): void;
}
interface Settable {
  set(value: number): void;
}

const NO_RANK = -1;

export class PodState {
  readonly podId: string;
  model: string | null = null;
  lastEventMs = 0;
  stale = false;
  /** KV-cache groups seen as full attention (hybrid models), so their removals are indexed too. */
  readonly fullAttentionGroups = new Set<number>();
  readonly received: Inc;
  readonly appliedStored: Inc;
  readonly appliedRemoved: Inc;
  readonly appliedCleared: Inc;
  readonly lastEventGauge: Settable;
  readonly #staleGauge: Settable;
  readonly #seqs = new Map<number, bigint>();

  constructor(podId: string, m: Metrics) {
    this.podId = podId;
    this.received = m.kvEventsReceived.labels({ pod: podId });
    this.appliedStored = m.kvEventsApplied.labels({ pod: podId, type: "BlockStored" });
    this.appliedRemoved = m.kvEventsApplied.labels({ pod: podId, type: "BlockRemoved" });
    this.appliedCleared = m.kvEventsApplied.labels({ pod: podId, type: "AllBlocksCleared" });
    this.lastEventGauge = m.kvLastEventTimestamp.labels({ pod: podId });
    this.#staleGauge = m.kvPodStale.labels({ pod: podId });
    this.#staleGauge.set(0);
  }

  /**
   * Records `seq` for the publisher of `rank`. The first seq seen may be > 0 (slow joiner: vLLM drops what
   * it sends before our subscription arrives), so it is never a gap. Backwards (or equal) = restart.
   */
  trackSeq(rank: number | null, seq: bigint): SeqVerdict {
    const key = rank ?? NO_RANK;
    const last = this.#seqs.get(key);
    this.#seqs.set(key, seq);
    if (last === undefined) return { kind: "first" };
    if (seq === last + 1n) return { kind: "next" };
    if (seq > last) {
      const missed = seq - last - 1n;
      return { kind: "gap", missed: missed > 2n ** 53n ? Number.MAX_SAFE_INTEGER : Number(missed) };
    }
    return { kind: "restart" };
  }

  setStale(stale: boolean): void {
    this.stale = stale;
    this.#staleGauge.set(stale ? 1 : 0);
  }

  view(hash: { checks: number; mismatches: number }): PodStateView {
    return {
      podId: this.podId,
      model: this.model,
      lastEventMs: this.lastEventMs,
      publishers: [...this.#seqs].map(([rank, seq]) => ({
        rank: rank === NO_RANK ? null : rank,
        lastSeq: seq.toString(),
      })),
      stale: this.stale,
      hashChecks: hash.checks,
      hashMismatches: hash.mismatches,
    };
  }
}
