// One budget per event-loop turn for every huge piece of KV-event work (issue 16): the sliced decode of a
// ~10 MB message and the applier's slices of a million-block batch. Each used to take its own 2 ms in the same
// check phase, so a decode next to an apply, or one apply slice per pod, stacked up into 4–16 ms turns, and
// the slices ran back to back. Here all of them share SLICE_MS per turn, then the loop goes back to timers and
// I/O (the next slice is a setImmediate: it runs after the next poll phase, so every request that has bytes
// waiting gets a turn between two slices). Tasks take turns round-robin: a huge decode does not starve an
// apply, nor one pod another.

/** Work per event-loop turn over all sliced tasks, ms. */
export const SLICE_MS = 1;

/**
 * One slice of a task: works until `performance.now()` reaches `deadline` (checking it often enough that a
 * slice overshoots by well under a millisecond) and returns true when the task is done, false to be called
 * again on a later turn. Throwing ends the task (its `run` promise rejects).
 */
export type SliceStep = (deadline: number) => boolean;

interface Task {
  step: SliceStep;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class LoopSlicer {
  readonly #sliceMs: number;
  readonly #tasks: Task[] = [];
  #scheduled = false;

  /** `sliceMs` 0: one step of each task per turn (tests). */
  constructor(sliceMs = SLICE_MS) {
    this.#sliceMs = sliceMs;
  }

  /** Tasks under way. */
  get size(): number {
    return this.#tasks.length;
  }

  /** Runs `step` on later turns until it returns true (resolves) or throws (rejects). Never runs it now. */
  run(step: SliceStep): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#tasks.push({ step, resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#turn());
  }

  #turn(): void {
    this.#scheduled = false;
    const deadline = performance.now() + this.#sliceMs;
    // Each task at most once a turn; one that is not done goes to the back, so the next turn starts with another.
    for (let n = this.#tasks.length; n > 0 && this.#tasks.length > 0; n--) {
      const task = this.#tasks.shift()!;
      let done: boolean;
      try {
        done = task.step(deadline);
      } catch (err) {
        task.reject(err);
        continue;
      }
      if (done) task.resolve();
      else this.#tasks.push(task);
      if (performance.now() >= deadline) break;
    }
    if (this.#tasks.length > 0) this.#schedule();
  }
}

/** The process's slicer: the event loop is one, so is its budget. */
export const loopSlicer = new LoopSlicer();
