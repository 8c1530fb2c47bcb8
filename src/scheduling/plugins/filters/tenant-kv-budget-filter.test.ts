import { describe, expect, it } from "vitest";
import { SchedulingCycle } from "../../cycle-state.js";
import { aRequest, anEndpoint } from "../../scheduling.fixture.js";
import type { Endpoint, Filter } from "../../types.js";
import { tenantKvBudgetFilter, tenantKvBudgetParams } from "./tenant-kv-budget-filter.js";

const make = (params: object, now: () => number = () => 0) =>
  tenantKvBudgetFilter.create("t", tenantKvBudgetParams.parse(params), {
    random: Math.random,
    now,
  }) as Filter;

const pods: Endpoint[] = [anEndpoint("10.0.0.1:80"), anEndpoint("10.0.0.2:80"), anEndpoint("10.0.0.3:80")];
const cycle = (flow: string | null, blocks: number) =>
  new SchedulingCycle(
    {
      ...aRequest(blocks),
      headers: new Map(flow === null ? [] : [["x-gateway-inference-fairness-id", flow]]),
    },
    null,
  );
/** Routes `n` requests of `blocks` uncached blocks of `flow` to pods[i] (what the filter learns from). */
const route = (f: Filter, flow: string | null, i: number, blocks: number, n = 1) => {
  for (let k = 0; k < n; k++) {
    const c = cycle(flow, blocks);
    f.preRequest?.(c, { endpoint: pods[i]!, candidates: pods, index: i });
  }
};
const kept = (f: Filter, flow: string | null) => f.filter(cycle(flow, 10), pods).map((e) => e.address);

describe("tenant-kv-budget-filter", () => {
  it("drops the pods where the flow wrote more than its budget of new blocks while another flow works there", () => {
    const f = make({ budget: 0.5, minPodBlocks: 100 });
    route(f, "interactive", 0, 30, 2); // pod 0: interactive 60
    route(f, "batch", 0, 100, 2); // pod 0: batch 200 of 260 → over 0.5
    route(f, "batch", 1, 100, 3); // pod 1: batch alone → nobody else to protect
    route(f, "interactive", 2, 10); // pod 2: below minPodBlocks
    expect(kept(f, "batch")).toEqual(["10.0.0.2:80", "10.0.0.3:80"]);
    // The other flow is under budget on pod 0 and never dropped for someone else's writes.
    expect(kept(f, "interactive")).toEqual(pods.map((e) => e.address));
  });

  it("keeps every candidate when all are over budget: it steers, never fails a request", () => {
    const f = make({ budget: 0.5, minPodBlocks: 1 });
    for (let i = 0; i < 3; i++) {
      route(f, "a", i, 1);
      route(f, "b", i, 100);
    }
    expect(kept(f, "b")).toHaveLength(3);
  });

  it("yields when every pod it would keep is busier than a pod it would drop", () => {
    const f = make({ budget: 0.5, minPodBlocks: 1 });
    route(f, "a", 0, 10);
    route(f, "b", 0, 100); // b over budget on pod 0 only
    const busy = [anEndpoint("10.0.0.1:80"), anEndpoint("10.0.0.2:80", { waiting: 3 })];
    const idle = [anEndpoint("10.0.0.1:80", { waiting: 3 }), anEndpoint("10.0.0.2:80", { waiting: 3 })];
    expect(f.filter(cycle("b", 10), busy).map((e) => e.address)).toEqual(["10.0.0.1:80", "10.0.0.2:80"]);
    expect(f.filter(cycle("b", 10), idle).map((e) => e.address)).toEqual(["10.0.0.2:80"]);
  });

  it("forgets old writes with the half-life", () => {
    let t = 0;
    const f = make({ budget: 0.5, minPodBlocks: 100, halfLifeMs: 1000 }, () => t);
    route(f, "a", 0, 50);
    route(f, "b", 0, 300);
    expect(kept(f, "b")).not.toContain("10.0.0.1:80");
    t = 5000; // 350 blocks decay to ≈ 11: under minPodBlocks
    expect(kept(f, "b")).toContain("10.0.0.1:80");
  });

  it("falls back to the model as the flow and bounds the flows counted per pod", () => {
    const f = make({ budget: 0.5, minPodBlocks: 1, maxFlows: 2 });
    route(f, null, 0, 100); // flow "m" (the model)
    route(f, "x", 0, 10);
    route(f, "y", 0, 10); // third id on the pod → the shared bucket
    route(f, "z", 0, 10); // the shared bucket again
    expect(kept(f, null)).not.toContain("10.0.0.1:80"); // "m": 100 of 130
    expect(kept(f, "x")).toContain("10.0.0.1:80");
    expect(kept(f, "z")).toContain("10.0.0.1:80"); // shared bucket 20 of 130
  });
});
