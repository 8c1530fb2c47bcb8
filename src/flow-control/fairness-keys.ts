// Fairness ids come from a client header, so they are bounded before they become map keys or metric labels:
// at most `maxFlows` distinct ids are tracked; an id seen when the table is full takes the slot of the least
// recently used id with nothing queued, else it is folded into the shared OTHER_FLOW.

export const OTHER_FLOW = "__other__";

/** Whether an id still has requests queued (such an id keeps its slot). */
export type BusyCheck = (id: string) => boolean;

export class FairnessKeys {
  readonly #max: number;
  /** Insertion order = recency order (re-inserted on use). */
  readonly #ids = new Map<string, true>();

  constructor(maxFlows: number) {
    this.#max = Math.max(1, maxFlows);
  }

  get size(): number {
    return this.#ids.size;
  }

  /** The key to queue `raw` under (`raw` itself, or OTHER_FLOW when no slot is free). */
  keyFor(raw: string, busy: BusyCheck): string {
    if (this.#ids.has(raw)) {
      this.#ids.delete(raw);
      this.#ids.set(raw, true);
      return raw;
    }
    if (this.#ids.size >= this.#max) {
      let victim: string | null = null;
      for (const id of this.#ids.keys()) {
        if (!busy(id)) {
          victim = id;
          break;
        }
      }
      if (victim === null) return OTHER_FLOW;
      this.#ids.delete(victim);
    }
    this.#ids.set(raw, true);
    return raw;
  }
}
