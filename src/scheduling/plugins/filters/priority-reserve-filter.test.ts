import { describe, expect, it } from "vitest";
import { SchedulingCycle } from "../../cycle-state.js";
import { aRequest, anEndpoint } from "../../scheduling.fixture.js";
import type { Endpoint, Filter } from "../../types.js";
import { priorityReserveFilter, priorityReserveParams } from "./priority-reserve-filter.js";

const make = (params: object, now: () => number = () => 0) =>
  priorityReserveFilter.create("r", priorityReserveParams.parse(params), {
    random: Math.random,
    blockSize: 64,
    now,
  }) as Filter;

const pods: Endpoint[] = [
  anEndpoint("10.0.0.1:80", { waiting: 4 }),
  anEndpoint("10.0.0.2:80", { waiting: 0 }),
  anEndpoint("10.0.0.3:80", { waiting: 2 }),
  anEndpoint("10.0.0.4:80", { waiting: 1 }),
];
const cycle = (priority: number | undefined, promptTokens = 640) =>
  new SchedulingCycle(
    { ...aRequest(10), promptTokens, ...(priority === undefined ? {} : { priority }) },
    null,
  );
const kept = (f: Filter, priority: number | undefined, candidates = pods) =>
  f.filter(cycle(priority), candidates).map((e) => e.address);
/** Schedules one request of `priority` and reports it routed to the first kept pod (what the filter learns). */
const route = (f: Filter, priority: number, promptTokens = 640) => {
  const c = cycle(priority, promptTokens);
  const keep = f.filter(c, pods);
  const index = pods.indexOf(keep[0]!);
  f.preRequest?.(c, { endpoint: pods[index]!, candidates: pods, index });
  return keep;
};

describe("priority-reserve-filter", () => {
  it("passes every request untouched while the protected band has sent nothing", () => {
    const f = make({});
    expect(kept(f, 0)).toHaveLength(4);
    expect(kept(f, undefined)).toHaveLength(4);
  });

  it("reserves the least loaded pod for the protected band and keeps lower bands off it", () => {
    const f = make({});
    expect(route(f, 1).map((e) => e.address)).toEqual(["10.0.0.2:80"]);
    expect(kept(f, 0)).toEqual(["10.0.0.1:80", "10.0.0.3:80", "10.0.0.4:80"]);
    expect(kept(f, -1)).not.toContain("10.0.0.2:80");
    expect(kept(f, 2)).toEqual(["10.0.0.2:80"]);
  });

  it("keeps the same pod reserved when loads change (the protected band's prefixes stay warm there)", () => {
    const f = make({});
    route(f, 1);
    const shifted = pods.map((e, i) => anEndpoint(e.address, { waiting: i === 1 ? 9 : 0 }));
    expect(kept(f, 1, shifted)).toEqual(["10.0.0.2:80"]);
  });

  it("grows the reserve with the protected band's uncached tokens per second, up to maxPods", () => {
    let t = 0;
    const f = make({ maxPods: 3, podTokensPerSecond: 1000, halfLifeMs: 1000 }, () => t);
    // 2,000 uncached tokens per 100 ms = 20,000 tokens/s: wants 20 pods, capped at 3 (and one pod left over).
    for (; t < 3000; t += 100) route(f, 1, 2000);
    expect(kept(f, 1)).toHaveLength(3);
    expect(kept(f, 0)).toHaveLength(1);
    // Demand falls to 1,000 tokens every 1,000 ms (≈ 1,000 tokens/s): back to one pod, the oldest kept.
    const first = kept(f, 1)[0];
    for (; t < 12_000; t += 1000) route(f, 1, 1000);
    expect(kept(f, 1)).toEqual([first]);
  });

  it("dissolves the reserve idleMs after the last protected request", () => {
    let t = 0;
    const f = make({ idleMs: 5000 }, () => t);
    route(f, 1);
    t = 4999;
    expect(kept(f, 0)).toHaveLength(3);
    t = 5001;
    expect(kept(f, 0)).toHaveLength(4);
  });

  it("never leaves a request without candidates: one pod is never reserved, a lone pod serves everyone", () => {
    const f = make({ maxPods: 8, podTokensPerSecond: 1 });
    route(f, 1, 100_000);
    expect(kept(f, 0)).toHaveLength(1);
    expect(kept(f, 0, [pods[1]!])).toEqual(["10.0.0.2:80"]);
    expect(kept(f, 1, [pods[0]!])).toEqual(["10.0.0.1:80"]);
  });

  it("does not move the reserve for a request that sees only a subset of the pool", () => {
    const f = make({});
    route(f, 1);
    const subset = [pods[0]!, pods[2]!];
    const hinted = (priority: number) =>
      new SchedulingCycle(
        {
          ...aRequest(
            10,
            subset.map((e) => e.address),
          ),
          promptTokens: 640,
          priority,
        },
        null,
      );
    expect(f.filter(hinted(1), subset).map((e) => e.address)).toEqual(["10.0.0.3:80"]);
    expect(kept(f, 1)).toEqual(["10.0.0.2:80"]);
  });

  it("replaces a reserved pod that left the candidates", () => {
    const f = make({});
    route(f, 1);
    const without = pods.filter((e) => e.address !== "10.0.0.2:80");
    expect(kept(f, 1, without)).toEqual(["10.0.0.4:80"]);
    expect(kept(f, 0, without)).toEqual(["10.0.0.1:80", "10.0.0.3:80"]);
  });
});
