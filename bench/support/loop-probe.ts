// Event-loop probe preloaded into a `kvpick serve` child (`node --import <this file>`) by the event-loop
// benchmark. Why not the child's /metrics: prom-client's nodejs_eventloop_lag_* use a 10 ms
// monitorEventLoopDelay, which records the whole timer interval (an idle loop reads p50 ≈ 10 ms), so it
// cannot show a 5 ms target. This probe keeps a 1 ms histogram (reported minus the 1 ms interval) and a list
// of loop turns longer than STALL_MS, each split into the time the main thread ran (our stall) and the time it
// waited for a core (the load generator or another process had it), from /proc/thread-self/schedstat, with
// the GC pauses that overlapped it. SIGUSR2 starts a window (resets); the next SIGUSR2 writes the window to
// $KVPICK_LOOP_PROBE_OUT and starts a new one. Linux only (schedstat); elsewhere run/wait are null.
import { closeSync, openSync, readSync, writeFileSync } from "node:fs";
import { monitorEventLoopDelay, PerformanceObserver, performance } from "node:perf_hooks";

/** A loop turn longer than this (beyond the 1 ms interval) is listed. */
const STALL_MS = 5;
const TICK_MS = 1;

export interface ProbeStall {
  /** ms since the window started, at the end of the turn. */
  atMs: number;
  /** How much later than due the 1 ms timer fired. */
  lateMs: number;
  /** Of the turn, time the main thread was on a core, and waiting in the run queue (null: no schedstat). */
  runMs: number | null;
  waitMs: number | null;
  /** GC pauses that overlapped the turn (main-thread, stop-the-world parts as perf_hooks reports them). */
  gcMs: number;
}

export interface ProbeWindow {
  seconds: number;
  /** Delay beyond the 1 ms interval, ms. */
  lag: { p50: number; p90: number; p99: number; max: number; count: number };
  /** GC pauses in the window: count, total and longest (ms). */
  gc: { count: number; totalMs: number; maxMs: number };
  stalls: ProbeStall[];
}

const out = process.env.KVPICK_LOOP_PROBE_OUT;
if (out !== undefined && out !== "") {
  const hist = monitorEventLoopDelay({ resolution: TICK_MS });
  hist.enable();
  let fd: number | null = null;
  try {
    fd = openSync("/proc/thread-self/schedstat", "r");
  } catch {
    fd = null;
  }
  const buf = Buffer.alloc(128);
  /** [ns on a core, ns waiting for one] of the main thread. */
  const sched = (): [number, number] | null => {
    if (fd === null) return null;
    const n = readSync(fd, buf, 0, buf.length, 0);
    const [run, wait] = buf.toString("latin1", 0, n).split(" ");
    return [Number(run), Number(wait)];
  };
  const gcs: { start: number; end: number }[] = [];
  let gcCount = 0;
  let gcTotal = 0;
  let gcMax = 0;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcs.push({ start: e.startTime, end: e.startTime + e.duration });
      gcCount++;
      gcTotal += e.duration;
      gcMax = Math.max(gcMax, e.duration);
    }
    if (gcs.length > 4096) gcs.splice(0, gcs.length - 4096);
  }).observe({ entryTypes: ["gc"] });

  let windowStart = performance.now();
  let stalls: ProbeStall[] = [];
  let last = performance.now();
  let lastSched = sched();
  const pendingGcCheck: { from: number; to: number; stall: ProbeStall }[] = [];
  setInterval(() => {
    const now = performance.now();
    const s = sched();
    const late = now - last - TICK_MS;
    if (late > STALL_MS) {
      const stall: ProbeStall = {
        atMs: Math.round(now - windowStart),
        lateMs: round1(late),
        runMs: s && lastSched ? round1((s[0] - lastSched[0]) / 1e6) : null,
        waitMs: s && lastSched ? round1((s[1] - lastSched[1]) / 1e6) : null,
        gcMs: 0,
      };
      stalls.push(stall);
      // GC entries are delivered asynchronously: attribute them on a later turn.
      pendingGcCheck.push({ from: last, to: now, stall });
    }
    if (pendingGcCheck.length > 0 && now - pendingGcCheck[0]!.to > 50) {
      for (const p of pendingGcCheck.splice(0)) {
        for (const g of gcs) {
          const overlap = Math.min(g.end, p.to) - Math.max(g.start, p.from);
          if (overlap > 0) p.stall.gcMs = round1(p.stall.gcMs + overlap);
        }
      }
    }
    last = now;
    lastSched = s;
  }, TICK_MS).unref();

  process.on("SIGUSR2", () => {
    const ms = (ns: number) => round1(Math.max(0, ns / 1e6 - TICK_MS));
    const window: ProbeWindow = {
      seconds: round1((performance.now() - windowStart) / 1e3),
      lag: {
        p50: ms(hist.percentile(50)),
        p90: ms(hist.percentile(90)),
        p99: ms(hist.percentile(99)),
        max: ms(hist.max),
        count: hist.count,
      },
      gc: { count: gcCount, totalMs: round1(gcTotal), maxMs: round1(gcMax) },
      stalls,
    };
    writeFileSync(out, `${JSON.stringify(window)}\n`);
    hist.reset();
    stalls = [];
    gcCount = 0;
    gcTotal = 0;
    gcMax = 0;
    windowStart = performance.now();
  });
  process.on("exit", () => {
    if (fd !== null) closeSync(fd);
  });
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
