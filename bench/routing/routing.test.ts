import { describe, expect, it } from "vitest";
import { DEFAULT_ENGINE_CONFIG } from "../../src/sim/engine-config.js";
import { seededRng } from "../../src/sim/random.js";
import { POLICY_CONFIGS, podOfAddress } from "./policies.js";
import { quantile, summarize } from "./summary.js";
import { runVirtual } from "./virtual-run.js";
import { poissonArrivals, sharedPrefix, zipfSampler } from "./workloads.js";

describe("policies", () => {
  it("name pods by address and run the GIE baseline without kvpick's post-pick services", () => {
    expect(podOfAddress("10.0.0.8:8000")).toBe(7);
    expect(POLICY_CONFIGS.precise).toMatchObject({ speculativeTtlMs: 0, dispatchCredit: false });
    expect(POLICY_CONFIGS["precise-speculative"]).toMatchObject({
      speculativeTtlMs: 2000,
      dispatchCredit: false,
    });
    expect(POLICY_CONFIGS["precise-credit"]).toMatchObject({ speculativeTtlMs: 0, dispatchCredit: true });
    expect(POLICY_CONFIGS.kvpick).toEqual({}); // kvpick's defaults, exactly as `kvpick serve` builds them
  });
});

describe("workloads", () => {
  it("are reproducible from the seed and follow the stage rates", () => {
    const stages = [{ qps: 50, seconds: 20 }];
    const a = poissonArrivals(seededRng(1), stages);
    expect(poissonArrivals(seededRng(1), stages)).toEqual(a);
    expect(a.length).toBeGreaterThan(850);
    expect(a.length).toBeLessThan(1150);
    const z = zipfSampler(10, 1);
    const rng = seededRng(3);
    const counts = new Array(10).fill(0);
    for (let i = 0; i < 10_000; i++) counts[z(rng)]++;
    expect(counts[0]).toBeGreaterThan(counts[9] * 5);
  });

  it("quantile interpolates", () => {
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantile([5], 0.9)).toBe(5);
  });
});

describe("virtual run", () => {
  const workload = sharedPrefix(
    {
      seed: 5,
      stages: [{ qps: 4, seconds: 10 }],
      groups: 3,
      usersPerGroup: 2,
      systemTokens: 640,
      questionTokens: 100,
      outputTokens: 20,
      zipfAlpha: null,
    },
    "t",
    "t",
    "t",
  );
  const run = (policy: "precise" | "random") =>
    runVirtual({
      workload,
      policy,
      seed: 9,
      pods: 3,
      engine: DEFAULT_ENGINE_CONFIG,
      eventDelaySeconds: 0.05,
      scrapeIntervalSeconds: 0.05,
      hashSeed: "42",
      model: "m",
      maxInFlight: Number.POSITIVE_INFINITY,
    });

  it("routes precise through the real index and is deterministic", () => {
    const a = run("precise");
    expect(a.records.length).toBe(workload.sessions.length);
    expect(a.eventBatches).toBeGreaterThan(0);
    expect(a.indexEntriesAtEnd).toBeGreaterThan(0);
    const sa = summarize(a, workload).overall;
    const sr = summarize(run("random"), workload).overall;
    expect(sa.hitRate).toBeGreaterThan(sr.hitRate);
    expect(summarize(run("precise"), workload).overall).toEqual(sa);
  });
});
