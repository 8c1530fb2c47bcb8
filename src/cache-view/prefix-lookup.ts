// The read model's contract: what kvpick believes each pod holds, as scheduling reads it. Implemented by
// kv-index/block-index.ts (the engine-fed index) and layered here by cache-view.ts (accuracy credit,
// speculative entries, the shared index). Synchronous and read-only: a request's shared-index answer is
// fetched before scheduling (cache-view.ts `lookupFor`).

/** The KV-block index as scheduling reads it. */
export interface PrefixLookup {
  /**
   * For each podIds[i]: blocks[i] = consecutive blocks of `chain` from block 0 the pod holds (any medium);
   * weighted[i] = sum over those blocks of the best medium weight (GPU 1.0, CPU 0.8), so weighted[i] ≤ blocks[i].
   */
  matchPrefix(
    chain: BigUint64Array,
    podIds: readonly string[],
  ): { blocks: Uint32Array; weighted: Float64Array };
  /**
   * Whether the index holds any block of this pod id (topic `kv@<id>@<model>`: "ip:port" or just "ip") now.
   * Says nothing about whether the pod sends events: a pod that published AllBlocksCleared holds none.
   */
  hasPod(podId: string): boolean;
  /**
   * Whether this pod id has published any KV event (a live batch, even only AllBlocksCleared, or a replayed
   * one) since it joined the pool: event-driven for the rest of its membership, whatever it holds now. Such a
   * pod is never scored by the estimated (prompt-text) fallback. False again once the pod is forgotten.
   * Absent = `hasPod` (a bare BlockIndex, which cannot tell; kvpick serve always wires the ingest's answer).
   */
  eventDriven?(podId: string): boolean;
  /**
   * Optional: how much a pod's cached blocks can be trusted, in [0, 1] — 1 when its KV-event state is exact,
   * `index.degradedCreditFactor` while degraded (events lost and not recovered). Absent = 1 for every pod.
   * Scales `PrefixMatch.weighted`, never `blocks`.
   */
  creditFactor?(podId: string): number;
}

/** `lookup.eventDriven(podId)`, or `hasPod` for a lookup that cannot tell publishers from holders. */
export function isEventDriven(lookup: PrefixLookup, podId: string): boolean {
  return lookup.eventDriven?.(podId) ?? lookup.hasPod(podId);
}
