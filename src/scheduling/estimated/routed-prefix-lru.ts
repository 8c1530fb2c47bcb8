// Per-endpoint LRU of the approximate prefix keys kvpick routed to each endpoint (GIE's approximate prefix
// index): what a pod probably caches, learnt from routing decisions alone, never told what the pod really
// stored or evicted. A Map's insertion order is its recency order (oldest first).

interface PodLru {
  readonly keys: Map<number, true>;
  /** Last time (ms) the endpoint was a candidate or a target: endpoints gone for long are dropped. */
  lastSeen: number;
  /**
   * The last key array added, while nothing else changed the map since: adding it again leaves the map as it
   * is. Key arrays are never mutated (a memoised body's keys are one shared array), so identity = same keys.
   */
  lastAdded: Float64Array | null;
  /** Whether that add kept every one of its keys (it had no more keys than the capacity). */
  lastAddedWhole: boolean;
  /** The last key array matched and its count, while the map has not changed since. */
  lastMatched: Float64Array | null;
  lastCount: number;
}

export interface RoutedPrefixLruStats {
  /** Endpoints with an LRU. */
  readonly pods: number;
  /** Keys over all endpoints. */
  readonly entries: number;
}

/** An endpoint unseen this long (it left the pool) loses its LRU. */
const FORGET_AFTER_MS = 10 * 60_000;
const PRUNE_EVERY_MS = 60_000;

export class RoutedPrefixLru {
  readonly #pods = new Map<string, PodLru>();
  readonly #now: () => number;
  #lastPrune: number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
    this.#lastPrune = now();
  }

  /** Consecutive keys from keys[0] recorded for `address` (0 for an endpoint never routed to). */
  match(address: string, keys: Float64Array): number {
    const pod = this.#pods.get(address);
    if (pod === undefined) return 0;
    pod.lastSeen = this.#now();
    // The same (shared, immutable) keys against an unchanged map: the same count, without 256 lookups.
    if (pod.lastMatched === keys) return pod.lastCount;
    let i = 0;
    while (i < keys.length && pod.keys.has(keys[i]!)) i++;
    pod.lastMatched = keys;
    pod.lastCount = i;
    return i;
  }

  /** The request went to `address`: its keys become the endpoint's most recent; the oldest beyond `capacity` go. */
  add(address: string, keys: Float64Array, capacity: number): void {
    const now = this.#now();
    let pod = this.#pods.get(address);
    if (pod === undefined) {
      pod = {
        keys: new Map(),
        lastSeen: now,
        lastAdded: null,
        lastAddedWhole: false,
        lastMatched: null,
        lastCount: 0,
      };
      this.#pods.set(address, pod);
    }
    pod.lastSeen = now;
    if (now - this.#lastPrune > PRUNE_EVERY_MS) this.#prune(now);
    // Re-adding the very keys added last, all still there and nothing else added since, would delete and re-set
    // them in the same order and evict nothing: the map would stay as it is.
    const limit = Math.max(1, capacity);
    if (pod.lastAdded === keys && pod.lastAddedWhole && pod.keys.size <= limit) return;
    pod.lastAdded = keys;
    pod.lastAddedWhole = keys.length <= limit;
    pod.lastMatched = null;
    const m = pod.keys;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      m.delete(k);
      m.set(k, true);
    }
    let excess = m.size - limit;
    if (excess > 0) {
      for (const k of m.keys()) {
        m.delete(k);
        if (--excess === 0) break;
      }
    }
  }

  /** Forgets one endpoint (e.g. its KV events now arrive, so the exact index takes over). */
  forget(address: string): void {
    this.#pods.delete(address);
  }

  stats(): RoutedPrefixLruStats {
    let entries = 0;
    for (const p of this.#pods.values()) entries += p.keys.size;
    return { pods: this.#pods.size, entries };
  }

  #prune(now: number): void {
    this.#lastPrune = now;
    for (const [address, pod] of this.#pods)
      if (now - pod.lastSeen > FORGET_AFTER_MS) this.#pods.delete(address);
  }
}
