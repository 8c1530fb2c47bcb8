// vLLM's replay buffer (`ZmqEventPublisher._buffer`, a deque of maxlen `buffer_steps`): the last N
// published batches as (seq, payload), oldest first. Counted in batches, not events.

export interface RingEntry {
  readonly seq: bigint;
  readonly payload: Uint8Array;
}

export class ReplayRing {
  readonly capacity: number;
  readonly #slots: (RingEntry | undefined)[];
  #head = 0; // index of the oldest entry
  #size = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError(`buffer steps must be a positive integer, got ${capacity}`);
    this.capacity = capacity;
    this.#slots = new Array(capacity);
  }

  get size(): number {
    return this.#size;
  }

  /** Appends one batch; past capacity the oldest falls out. */
  push(seq: bigint, payload: Uint8Array): void {
    const entry = { seq, payload };
    if (this.#size < this.capacity) {
      this.#slots[(this.#head + this.#size) % this.capacity] = entry;
      this.#size++;
      return;
    }
    this.#slots[this.#head] = entry;
    this.#head = (this.#head + 1) % this.capacity;
  }

  /** A snapshot of the entries with seq ≥ `start`, oldest first (what vLLM replays for a request). */
  from(start: bigint): RingEntry[] {
    const out: RingEntry[] = [];
    for (let i = 0; i < this.#size; i++) {
      const e = this.#slots[(this.#head + i) % this.capacity]!;
      if (e.seq >= start) out.push(e);
    }
    return out;
  }

  clear(): void {
    this.#slots.fill(undefined);
    this.#head = 0;
    this.#size = 0;
  }
}
