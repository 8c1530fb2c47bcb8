// What the KV-event ingest tells a mirror of the index (the optional Redis-backed shared index), after it has
// applied each change locally. The mirror reads the index itself for the values it writes, so these calls
// only name what changed; they must return at once (no I/O on the event path) and never throw.

export interface IndexMirror {
  /** `count` blocks (words: lo, hi pairs) of `podId` in `medium` were stored or removed locally. */
  touched(podId: string, medium: string, words: Uint32Array, count: number): void;
  /** Every block of `podId` was dropped locally (AllBlocksCleared, publisher restart, pod left the pool). */
  podCleared(podId: string): void;
}
