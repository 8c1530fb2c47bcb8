// The longest event-loop turn of this thread while some work runs, as CPU time this thread spent in it
// (Linux /proc/thread-self/schedstat), so a test can assert "never held the loop > N ms" on a loaded machine,
// where wall-clock loop delay also counts the time other processes had the core. GC pauses are reported
// apart (`maxRunMsBesidesGc`): when V8 collects depends on the whole process's heap, not on the code watched.
import { closeSync, openSync, readSync } from "node:fs";
import { PerformanceObserver } from "node:perf_hooks";

export interface LoopTurns {
  /** Stops watching (after the GC entries of the window have arrived); the longest turn, ms. */
  stop(): Promise<{ maxRunMs: number; maxRunMsBesidesGc: number; maxWallMs: number; maxGcMs: number }>;
}

export function watchLoopTurns(): LoopTurns {
  const fd = openSync("/proc/thread-self/schedstat", "r");
  const buf = Buffer.alloc(128);
  const runNs = () => {
    const n = readSync(fd, buf, 0, buf.length, 0);
    return Number(buf.toString("latin1", 0, n).split(" ")[0]);
  };
  const gcs: { start: number; end: number }[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcs.push({ start: e.startTime, end: e.startTime + e.duration });
  });
  observer.observe({ entryTypes: ["gc"] });
  const turns: { start: number; end: number; runMs: number }[] = [];
  let lastRun = runNs();
  let last = performance.now();
  const tick = () => {
    const run = runNs();
    const now = performance.now();
    if (now - last > 2) turns.push({ start: last, end: now, runMs: (run - lastRun) / 1e6 });
    lastRun = run;
    last = now;
  };
  const timer = setInterval(tick, 1);
  return {
    async stop() {
      tick();
      clearInterval(timer);
      closeSync(fd);
      await new Promise((r) => setTimeout(r, 50));
      observer.disconnect();
      let maxRunMs = 0;
      let maxRunMsBesidesGc = 0;
      let maxWallMs = 0;
      for (const t of turns) {
        let gc = 0;
        for (const g of gcs) gc += Math.max(0, Math.min(g.end, t.end) - Math.max(g.start, t.start));
        maxRunMs = Math.max(maxRunMs, t.runMs);
        maxRunMsBesidesGc = Math.max(maxRunMsBesidesGc, t.runMs - gc);
        maxWallMs = Math.max(maxWallMs, t.end - t.start);
      }
      const maxGcMs = Math.max(0, ...gcs.map((g) => g.end - g.start));
      return { maxRunMs, maxRunMsBesidesGc, maxWallMs, maxGcMs };
    },
  };
}
