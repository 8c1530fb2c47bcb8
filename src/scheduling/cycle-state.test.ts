import { describe, expect, it } from "vitest";
import { SchedulingCycle } from "./cycle-state.js";
import type { PrefixLookup } from "../cache-view/prefix-lookup.js";
import type { Endpoint, SchedulingRequest } from "./types.js";

const endpoint = (ip: string): Endpoint => ({
  address: `${ip}:8000`,
  ip,
  port: 8000,
  name: null,
  ready: true,
  metrics: null,
  metricsState: "fresh",
  metricsAgeMs: 0,
  lastScrapeError: null,
});
const request = (n: number): SchedulingRequest => ({
  requestId: "r",
  model: "m",
  targetModel: "m",
  blockHashes: BigUint64Array.from({ length: n }, (_, i) => BigInt(i + 1)),
  headers: new Map(),
});

describe("SchedulingCycle.prefixMatch", () => {
  it("scales a pod's weighted credit by its credit factor, never its block count", () => {
    const held: Record<string, number> = { "10.0.0.1": 4, "10.0.0.2": 4, "10.0.0.3": 0 };
    const lookup: PrefixLookup = {
      matchPrefix: (_chain, pods) => ({
        blocks: Uint32Array.from(pods.map((p) => held[p] ?? 0)),
        weighted: Float64Array.from(pods.map((p) => held[p] ?? 0)),
      }),
      hasPod: (p) => p in held,
      creditFactor: (p) => (p === "10.0.0.2" ? 0.5 : 1),
    };
    const cands = ["10.0.0.1", "10.0.0.2", "10.0.0.3"].map(endpoint);
    const m = new SchedulingCycle(request(8), lookup).prefixMatch(cands);
    expect([...m.blocks]).toEqual([4, 4, 0]);
    expect([...m.weighted]).toEqual([4, 2, 0]);
    const { creditFactor: _, ...plain } = lookup;
    expect([...new SchedulingCycle(request(8), plain).prefixMatch(cands).weighted]).toEqual([4, 4, 0]);
  });
});
