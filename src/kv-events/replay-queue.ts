// Admission of KV-event replays (llm-d's rules): at most `maxConcurrent` in flight (the rest wait, first
// come first served), one per replay endpoint at a time, and none for `cooldownMs` after an endpoint's replay
// failed — a pod without a replay socket must not be dialled on every gap.

export interface ReplayQueueOptions {
  maxConcurrent: number;
  cooldownMs: number;
  now?: () => number;
  /** Running replays changed (for the in-flight gauge). */
  onRunning?(running: number): void;
}

/** A replay job: resolves true when the replay worked, false when it failed (starts the cooldown). */
export type ReplayJob = () => Promise<boolean>;

export class ReplayQueue {
  readonly #o: ReplayQueueOptions;
  readonly #now: () => number;
  readonly #waiting: { endpoint: string; job: ReplayJob; done?: (ok: boolean) => void }[] = [];
  readonly #active = new Set<string>(); // endpoints waiting or running
  readonly #cooldownUntil = new Map<string, number>();
  readonly #jobs = new Set<Promise<void>>();
  #running = 0;
  /** Most replays ever running at once (for tests and diagnostics). */
  peakRunning = 0;

  constructor(options: ReplayQueueOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  get running(): number {
    return this.#running;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  /** Whether `endpoint` failed less than `cooldownMs` ago. */
  coolingDown(endpoint: string): boolean {
    const until = this.#cooldownUntil.get(endpoint);
    if (until === undefined) return false;
    if (this.#now() < until) return true;
    this.#cooldownUntil.delete(endpoint);
    return false;
  }

  /** Whether a replay of `endpoint` is waiting or running. */
  busy(endpoint: string): boolean {
    return this.#active.has(endpoint);
  }

  /**
   * Queues a replay; false (nothing queued) while the endpoint is busy or cooling down. `done` runs once
   * the endpoint is free again (so it may submit the next replay of the same endpoint).
   */
  submit(endpoint: string, job: ReplayJob, done?: (ok: boolean) => void): boolean {
    if (this.busy(endpoint) || this.coolingDown(endpoint)) return false;
    this.#active.add(endpoint);
    this.#waiting.push({ endpoint, job, ...(done === undefined ? {} : { done }) });
    this.#pump();
    return true;
  }

  /** Resolves once every running replay has ended (callers abort them first). */
  async drain(): Promise<void> {
    this.#waiting.length = 0;
    while (this.#jobs.size > 0) await Promise.allSettled([...this.#jobs]);
  }

  #pump(): void {
    while (this.#running < this.#o.maxConcurrent && this.#waiting.length > 0) {
      const { endpoint, job, done } = this.#waiting.shift()!;
      this.#running++;
      this.peakRunning = Math.max(this.peakRunning, this.#running);
      this.#o.onRunning?.(this.#running);
      const p = (async () => {
        let ok = false;
        try {
          ok = await job();
        } catch {
          ok = false; // jobs report their own errors; a throw still counts as a failure
        }
        if (!ok && this.#o.cooldownMs > 0)
          this.#cooldownUntil.set(endpoint, this.#now() + this.#o.cooldownMs);
        if (this.#cooldownUntil.size > 10_000) this.#expireCooldowns();
        this.#active.delete(endpoint);
        this.#running--;
        this.#o.onRunning?.(this.#running);
        done?.(ok);
        this.#pump();
      })();
      this.#jobs.add(p);
      void p.finally(() => this.#jobs.delete(p));
    }
  }

  #expireCooldowns(): void {
    const now = this.#now();
    for (const [ep, until] of this.#cooldownUntil) if (until <= now) this.#cooldownUntil.delete(ep);
  }
}
