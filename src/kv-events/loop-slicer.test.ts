import { describe, expect, it } from "vitest";
import { LoopSlicer } from "./loop-slicer.js";

/** A task that works (spins) until each slice's deadline, `slices` times, logging its calls. */
function spinner(name: string, slices: number, log: { name: string; deadline: number }[]) {
  let left = slices;
  return (deadline: number) => {
    log.push({ name, deadline });
    while (performance.now() < deadline) {}
    return --left === 0;
  };
}

describe("LoopSlicer", () => {
  it("gives its tasks one budget per turn between them, in turn", async () => {
    const slicer = new LoopSlicer(1);
    const log: { name: string; deadline: number }[] = [];
    await Promise.all([slicer.run(spinner("a", 3, log)), slicer.run(spinner("b", 3, log))]);
    // Each call used up the turn's budget, so each ran in a turn of its own, and they alternated.
    expect(log.map((c) => c.name)).toEqual(["a", "b", "a", "b", "a", "b"]);
    expect(new Set(log.map((c) => c.deadline)).size).toBe(6);
    expect(slicer.size).toBe(0);
  });

  it("lets a second task use what the first left of the turn", async () => {
    const slicer = new LoopSlicer(50);
    const deadlines: number[] = [];
    const quick = (deadline: number) => {
      deadlines.push(deadline);
      return true;
    };
    await Promise.all([slicer.run(quick), slicer.run(quick)]);
    expect(deadlines).toHaveLength(2);
    expect(deadlines[0]).toBe(deadlines[1]);
  });

  it("never runs a task in the calling turn, and lets timers and I/O in between slices", async () => {
    const slicer = new LoopSlicer(1);
    const log: { name: string; deadline: number }[] = [];
    const done = slicer.run(spinner("a", 20, log));
    expect(log).toHaveLength(0);
    // A timer due now fires after at most one slice (setImmediate yields: timers run on the next turn).
    const fired = await new Promise<number>((resolve) => setTimeout(() => resolve(log.length), 0));
    expect(fired).toBeLessThanOrEqual(2);
    await done;
    expect(log).toHaveLength(20);
  });

  it("rejects a task that throws; the others go on", async () => {
    const slicer = new LoopSlicer(1);
    const log: { name: string; deadline: number }[] = [];
    const bad = slicer.run(() => {
      throw new Error("boom");
    });
    const good = slicer.run(spinner("a", 3, log));
    await expect(bad).rejects.toThrow("boom");
    await good;
    expect(log).toHaveLength(3);
  });
});
