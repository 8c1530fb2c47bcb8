// Tests' view of the event loop while long work runs (huge KV-event batches, sliced hashing): a setImmediate
// probe (it runs once per loop turn, in the check phase) records each turn's wall time and, on Linux, the time
// the main thread was on a core (/proc/thread-self/schedstat), so a turn stretched by the machine (another
// process had the core) is not taken for one of ours. The kernel updates that figure at scheduler ticks (~4 ms)
// and switches: good for telling a 50 ms turn from a 2 ms one, too coarse for a median of 1 ms turns (use the
// wall times there).
import { closeSync, openSync, readSync } from "node:fs";

export interface LoopTurns {
  /** Turns seen so far. */
  readonly turns: number;
  /** Stops the probe: turns seen, each turn's wall ms and on-core ms (wall ms again without schedstat). */
  stop(): { turns: number; wallMs: number[]; runMs: number[] };
}

export function watchTurns(): LoopTurns {
  let fd: number | null = null;
  try {
    fd = openSync("/proc/thread-self/schedstat", "r");
  } catch {
    fd = null;
  }
  const buf = Buffer.alloc(128);
  const onCore = (): number => {
    if (fd === null) return performance.now();
    const n = readSync(fd, buf, 0, buf.length, 0);
    return Number(buf.toString("latin1", 0, n).split(" ")[0]) / 1e6;
  };
  const wallMs: number[] = [];
  const runMs: number[] = [];
  let stopped = false;
  let lastWall = performance.now();
  let lastRun = onCore();
  const tick = () => {
    if (stopped) return;
    const wall = performance.now();
    const run = onCore();
    wallMs.push(wall - lastWall);
    runMs.push(run - lastRun);
    lastWall = wall;
    lastRun = run;
    setImmediate(tick);
  };
  setImmediate(tick);
  return {
    get turns() {
      return wallMs.length;
    },
    stop() {
      stopped = true;
      if (fd !== null) closeSync(fd);
      fd = null;
      return { turns: wallMs.length, wallMs, runMs };
    },
  };
}

/** The q-quantile (0..1) of `xs`. */
export function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
}

/** Turns of the event loop that pass while `p` settles. */
export async function turnsWhile<T>(p: Promise<T>): Promise<[T, number]> {
  const watch = watchTurns();
  try {
    return [await p, watch.turns];
  } finally {
    watch.stop();
  }
}
