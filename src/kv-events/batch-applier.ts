// One decoded, in-order batch → the block index, synchronously (a reader never sees half a batch): stores
// and removals per medium, AllBlocksCleared, the hash-configuration check, and the pod's event counters.
import type { BlockIndex } from "../kv-index/block-index.js";
import type { Metrics } from "../observability/metrics.js";
import type { KvEvent, KvEventBatch } from "./decode.js";
import type { HashCheck } from "./hash-check.js";
import type { IndexMirror } from "./index-mirror.js";
import type { PodState } from "./pod-state.js";

export class BatchApplier {
  readonly #index: BlockIndex;
  readonly #metrics: Metrics;
  readonly #hashCheck: HashCheck;
  readonly #mirror: IndexMirror | null;

  constructor(index: BlockIndex, metrics: Metrics, hashCheck: HashCheck, mirror: IndexMirror | null = null) {
    this.#index = index;
    this.#metrics = metrics;
    this.#hashCheck = hashCheck;
    this.#mirror = mirror;
  }

  /** Forgets every block of the pod, here and in the mirror: the one way the ingest clears a pod. */
  clearPod(pod: string): void {
    this.#index.clearPod(pod);
    this.#mirror?.podCleared(pod);
  }

  apply(state: PodState, batch: KvEventBatch): void {
    const m = this.#metrics;
    const pod = state.podId;
    if (batch.unknownTags > 0) m.kvEventsUnknown.inc({ pod, kind: "tag" }, batch.unknownTags);
    if (batch.extraFields > 0) m.kvEventsUnknown.inc({ pod, kind: "field" }, batch.extraFields);
    const started = performance.now();
    for (const ev of batch.events) this.#event(pod, state, ev);
    m.kvApplySeconds.observe((performance.now() - started) / 1000);
  }

  #event(pod: string, state: PodState, ev: KvEvent): void {
    if (ev.type === "AllBlocksCleared") {
      this.clearPod(pod);
      state.accuracy.clearLoss(); // a reset is a full, known state again
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
      if (this.#hashCheck.check(pod, ev)) state.accuracy.hashSuspect(this.#hashCheck.suspect(pod));
      this.#index.store(pod, medium, words, ev.blockHashes.length);
      this.#mirror?.touched(pod, medium, words, ev.blockHashes.length);
      state.appliedStored.inc();
    } else {
      this.#index.remove(pod, medium, words, ev.blockHashes.length);
      this.#mirror?.touched(pod, medium, words, ev.blockHashes.length);
      state.appliedRemoved.inc();
    }
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
