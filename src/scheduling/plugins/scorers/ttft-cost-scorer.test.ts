import { describe, expect, it } from "vitest";
import type { Endpoint } from "../../../endpoints/endpoint.js";
import { SchedulingCycle } from "../../cycle-state.js";
import { createPluginRegistry } from "../index.js";
import { FakePrefixLookup, aRequest, anEndpoint } from "../../scheduling.fixture.js";
import type { PrefixLookup } from "../../../cache-view/prefix-lookup.js";
import type { PluginContext, Scorer } from "../../types.js";

const registry = createPluginRegistry();
const scorer = (lookup: PrefixLookup | null, parameters: Record<string, unknown> = {}) => {
  const context: PluginContext = { random: Math.random, blockSize: 64 };
  const s = registry.create({ type: "ttft-cost-scorer", parameters }, "scorer", context, "t") as Scorer;
  return (list: Endpoint[], blocks = 10) =>
    Array.from(s.score(new SchedulingCycle(aRequest(blocks), lookup), list));
};
const best = (scores: number[]) => scores.indexOf(Math.max(...scores));
const pod = (
  n: number,
  load: Parameters<typeof anEndpoint>[1] = {},
  state?: Parameters<typeof anEndpoint>[2],
) => anEndpoint(`10.0.0.${n}:80`, load, state);

describe("ttft-cost-scorer", () => {
  it("at equal load the longest cached prefix scores 1, others less, smoothly", () => {
    const lookup = new FakePrefixLookup()
      .hold("10.0.0.1:80", 3)
      .hold("10.0.0.2:80", 8)
      .hold("10.0.0.3:80", 5);
    const s = scorer(lookup)([pod(1), pod(2), pod(3)]);
    expect(best(s)).toBe(1);
    expect(s[1]).toBe(1);
    expect(s[2]).toBeGreaterThan(s[0]!);
    expect(s[0]).toBeGreaterThan(0);
  });

  it("an overloaded pod loses despite holding the whole prefix; fresh metrics only", () => {
    const lookup = new FakePrefixLookup().hold("10.0.0.1:80", 10);
    const hot = pod(1, { waiting: 40, kvCacheUsage: 0.95 });
    expect(best(scorer(lookup)([hot, pod(2, { kvCacheUsage: 0.1 })]))).toBe(1);
    // Two queued requests (~1,024 tokens each until kvpick learns better) outweigh recomputing a 640-token
    // prompt (charged twice: 1,280), not a 6,400-token one.
    expect(best(scorer(lookup)([pod(1, { waiting: 1 }), pod(2)]))).toBe(0);
    expect(best(scorer(lookup)([pod(1, { waiting: 2 }), pod(2)]))).toBe(1);
    const long = new FakePrefixLookup().hold("10.0.0.1:80", 100);
    expect(best(scorer(long)([pod(1, { waiting: 2 }), pod(2)], 100))).toBe(0);
    expect(scorer(lookup)([pod(1, {}, "stale"), pod(2)])).toEqual([0, 1]);
    expect(scorer(lookup)([])).toEqual([]);
  });

  it("trades the cache against the backlog kvpick itself routed (dispatch credit), without a cliff", () => {
    const lookup = new FakePrefixLookup().hold("10.0.0.1:80", 8);
    const withPending = (tokens: number) => ({
      ...pod(1),
      dispatched: { requests: 0, prefillTokens: 0, pendingPrefillTokens: tokens, inflight: 1 },
    });
    const share = (tokens: number) => scorer(lookup)([withPending(tokens), pod(2)])[0]!;
    expect(share(0)).toBe(1);
    const curve = [0, 500, 1000, 2000, 4000, 8000].map(share);
    for (let i = 1; i < curve.length; i++) expect(curve[i]).toBeLessThanOrEqual(curve[i - 1]!);
    expect(share(8000)).toBeLessThan(1); // the idle pod now wins
    expect(share(8000)).toBeGreaterThan(0);
  });

  it("credits CPU-resident blocks less than GPU ones", () => {
    const lookup = new FakePrefixLookup().hold("10.0.0.1:80", 10, 0.8).hold("10.0.0.2:80", 10, 1);
    expect(best(scorer(lookup)([pod(1), pod(2)]))).toBe(1);
  });

  it("scores a pod the index never heard of by estimated prefix matching", () => {
    const lookup = new FakePrefixLookup().hold("10.0.0.1:80", 0); // known: holds nothing of this prompt
    const fallback = {
      match: () => ({ total: 4, matched: Uint32Array.from([0, 4]), blockTokens: 160 }),
      record: () => {},
      forget: () => {},
    };
    const context: PluginContext = { random: Math.random, estimatedFallback: fallback };
    const s = registry.create({ type: "ttft-cost-scorer" }, "scorer", context, "t") as Scorer;
    const known = {
      ...lookup,
      hasPod: (id: string) => id === "10.0.0.1:80",
      matchPrefix: lookup.matchPrefix.bind(lookup),
    };
    const cycle = new SchedulingCycle(aRequest(10), known);
    expect(best(Array.from(s.score(cycle, [pod(1), pod(2)])))).toBe(1);
  });
});
