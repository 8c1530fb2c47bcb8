import { describe, expect, it } from "vitest";
import { PodAccuracy } from "./pod-accuracy.js";

describe("PodAccuracy", () => {
  it("is degraded by an unrecovered loss and heals after healAfterMs with a batch since", () => {
    const a = new PodAccuracy(1000);
    expect(a.state(0)).toBe("exact");
    expect(a.transition(0)).toBeNull();
    a.loss("gap", 100);
    expect(a.state(100)).toBe("degraded");
    expect(a.transition(100)).toEqual({ to: "degraded", reason: "gap", routine: false });
    expect(a.transition(200)).toBeNull(); // one line per transition
    expect(a.state(5000)).toBe("degraded"); // time alone does not heal: no batch since the loss
    a.applied();
    expect(a.state(1099)).toBe("degraded");
    expect(a.state(1100)).toBe("exact");
    expect(a.transition(1100)).toEqual({ to: "exact", reason: "gap", routine: false });
  });

  it("is degraded while a gap replays (routine), and exact when it ends", () => {
    const a = new PodAccuracy(60_000);
    a.recovering(1);
    expect(a.reason(0)).toBe("replaying");
    expect(a.transition(0)).toEqual({ to: "degraded", reason: "replaying", routine: true });
    a.recovering(-1);
    expect(a.transition(0)).toEqual({ to: "exact", reason: "replaying", routine: true });
  });

  it("reports a hash mismatch until the hashes look right again, and a reset clears losses", () => {
    const a = new PodAccuracy(60_000);
    a.loss("replay-failed", 0);
    a.hashSuspect(true);
    expect(a.reason(0)).toBe("hash-mismatch");
    a.hashSuspect(false);
    expect(a.reason(0)).toBe("replay-failed");
    a.reset();
    expect(a.state(0)).toBe("exact");
  });

  it("a truncated replay degrades loudly, time does not heal it, and its healing is logged even mid-replay", () => {
    const a = new PodAccuracy(100);
    a.recovering(1);
    expect(a.transition(0)).toEqual({ to: "degraded", reason: "replaying", routine: true });
    a.truncated(1);
    expect(a.transition(0)).toEqual({ to: "degraded", reason: "replay-truncated", routine: false });
    a.applied();
    expect(a.state(10_000)).toBe("degraded"); // only a replay that ends with its marker clears it
    a.truncated(-1);
    expect(a.transition(10_000)).toBeNull(); // still replaying
    a.recovering(-1);
    expect(a.transition(10_000)).toEqual({ to: "exact", reason: "replaying", routine: false });
  });
});
