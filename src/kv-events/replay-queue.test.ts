import { describe, expect, it } from "vitest";
import { ReplayQueue } from "./replay-queue.js";

/** A job that ends when the test says so. */
function gate() {
  let open!: (ok: boolean) => void;
  const done = new Promise<boolean>((r) => {
    open = r;
  });
  let started = false;
  return {
    job: () => {
      started = true;
      return done;
    },
    open,
    get started() {
      return started;
    },
  };
}
const tick = () => new Promise((r) => setImmediate(r));

describe("ReplayQueue", () => {
  it("runs at most maxConcurrent replays, the rest in arrival order", async () => {
    const running: number[] = [];
    const q = new ReplayQueue({ maxConcurrent: 2, cooldownMs: 0, onRunning: (n) => running.push(n) });
    const g = [gate(), gate(), gate(), gate()];
    g.forEach((x, i) => {
      expect(q.submit(`tcp://10.0.0.${i}:5558`, x.job)).toBe(true);
    });
    expect(g.map((x) => x.started)).toEqual([true, true, false, false]);
    expect([q.running, q.waiting]).toEqual([2, 2]);
    g[1]!.open(true);
    await tick();
    expect(g.map((x) => x.started)).toEqual([true, true, true, false]);
    for (const x of g) x.open(true);
    await q.drain();
    expect(q.running).toBe(0);
    expect(q.peakRunning).toBe(2);
    expect(Math.max(...running)).toBe(2);
  });

  it("refuses a second replay of a busy endpoint and cools an endpoint down after a failure", async () => {
    let now = 1000;
    const q = new ReplayQueue({ maxConcurrent: 8, cooldownMs: 30_000, now: () => now });
    const a = gate();
    expect(q.submit("tcp://a:1", a.job)).toBe(true);
    expect(q.busy("tcp://a:1")).toBe(true);
    expect(q.submit("tcp://a:1", gate().job)).toBe(false);
    a.open(false); // failed
    await q.drain();
    expect(q.busy("tcp://a:1")).toBe(false);
    expect(q.coolingDown("tcp://a:1")).toBe(true);
    expect(q.submit("tcp://a:1", gate().job)).toBe(false);
    now += 29_999;
    expect(q.coolingDown("tcp://a:1")).toBe(true);
    now += 1;
    expect(q.coolingDown("tcp://a:1")).toBe(false);
    const b = gate();
    expect(q.submit("tcp://a:1", b.job)).toBe(true);
    b.open(true); // success: no cooldown
    await q.drain();
    expect(q.coolingDown("tcp://a:1")).toBe(false);
  });

  it("counts a throwing job as a failure", async () => {
    const q = new ReplayQueue({ maxConcurrent: 1, cooldownMs: 10_000 });
    q.submit("tcp://b:1", async () => {
      throw new Error("boom");
    });
    await q.drain();
    expect(q.coolingDown("tcp://b:1")).toBe(true);
  });
});
