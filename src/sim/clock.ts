// The simulator's notion of time. Engine and block manager never read the wall clock: they ask a SimClock,
// so the same code runs live (LiveClock: simulated seconds = wall seconds × timeScale, timers on real
// setTimeout) and in virtual time (VirtualClock: a discrete-event queue a benchmark drives as fast as the
// CPU allows). All times are simulated seconds as float64.

export interface TimerHandle {
  cancel(): void;
}

export interface SimClock {
  /** Simulated seconds since the clock's origin. */
  now(): number;
  /** Runs `fn` once `delay` simulated seconds from now (delay ≤ 0: as soon as possible, in order). */
  setTimer(delay: number, fn: () => void): TimerHandle;
  /** Wall-clock-like epoch seconds of the simulated instant `t` (for KV-event batch `ts`). */
  epochSeconds(t: number): number;
}

/**
 * Live time, `timeScale` (k) times faster than the wall clock: every duration keeps its ratio to every
 * other, so k = 10 makes a 0.46 s prefill take 46 ms. Node timers have ~1 ms granularity; the engine keeps
 * its own logical step times, so lateness does not accumulate into simulated time.
 */
export class LiveClock implements SimClock {
  readonly timeScale: number;
  readonly #originWall = performance.now();
  readonly #originEpoch = Date.now() / 1000;

  constructor(timeScale = 1) {
    if (!(timeScale > 0)) throw new RangeError(`timeScale must be > 0, got ${timeScale}`);
    this.timeScale = timeScale;
  }

  now(): number {
    return ((performance.now() - this.#originWall) / 1000) * this.timeScale;
  }

  setTimer(delay: number, fn: () => void): TimerHandle {
    const ms = (delay / this.timeScale) * 1000;
    if (ms <= 0) {
      const h = setImmediate(fn);
      return { cancel: () => clearImmediate(h) };
    }
    const h = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(h) };
  }

  epochSeconds(t: number): number {
    // Events carry real wall time in live mode (what vLLM's time.time() would say).
    return this.#originEpoch + t / this.timeScale;
  }
}

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/**
 * Discrete-event time: `run()` pops timers in (time, insertion) order and jumps the clock to each. Nothing
 * waits on the wall clock, so hours of simulated traffic run in seconds.
 */
export class VirtualClock implements SimClock {
  #now = 0;
  #seq = 0;
  readonly #heap: Pending[] = [];
  readonly #epoch: number;

  constructor(epoch = 1_753_315_200) {
    this.#epoch = epoch;
  }

  now(): number {
    return this.#now;
  }

  epochSeconds(t: number): number {
    return this.#epoch + t;
  }

  setTimer(delay: number, fn: () => void): TimerHandle {
    const p: Pending = { at: this.#now + Math.max(0, delay), seq: this.#seq++, fn, cancelled: false };
    this.#push(p);
    return {
      cancel: () => {
        p.cancelled = true;
      },
    };
  }

  /** Pending timers (cancelled ones included until popped). */
  get pending(): number {
    return this.#heap.length;
  }

  /** Runs timers until none is left or the next is past `until`; returns the number run. */
  run(until = Number.POSITIVE_INFINITY, maxEvents = Number.POSITIVE_INFINITY): number {
    let n = 0;
    while (this.#heap.length > 0 && n < maxEvents) {
      const top = this.#heap[0]!;
      if (top.at > until) break;
      this.#pop();
      if (top.cancelled) continue;
      this.#now = top.at;
      n++;
      top.fn();
    }
    if (until !== Number.POSITIVE_INFINITY && until > this.#now) this.#now = until;
    return n;
  }

  #less(a: Pending, b: Pending): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  #push(p: Pending): void {
    const h = this.#heap;
    h.push(p);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#less(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.#less(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.#less(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}
