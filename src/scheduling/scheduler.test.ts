import { describe, expect, it } from "vitest";
import { EndpointStore } from "../endpoints/endpoint-store.js";
import { parseEndpointList } from "../endpoints/parse-endpoints.js";
import { parseConfig } from "../config/load.js";
import { BlockIndex } from "../kv-index/block-index.js";
import { createScheduler } from "./plugins/create-scheduler.js";
import { Scheduler } from "./scheduler.js";
import { FakePrefixLookup, aRequest, anEndpoint, readModel, staticSource } from "./scheduling.fixture.js";
import type { PrefixLookup } from "../cache-view/prefix-lookup.js";
import type { Endpoint, EndpointSource, Scorer } from "./types.js";

/** GIE's weighted precise profile (the field's default), without kvpick's post-pick services. */
const gie = parseConfig({
  scheduling: {
    speculativeTtlMs: 0,
    dispatchCredit: false,
    scorers: [
      { type: "precise-prefix-cache-scorer", weight: 3 },
      { type: "queue-scorer", weight: 2 },
      { type: "kv-cache-utilization-scorer", weight: 2 },
    ],
  },
}).scheduling;
const scheduler = (source: EndpointSource, lookup: PrefixLookup | null = null, random = Math.random) =>
  createScheduler(gie, { endpoints: source, prefixLookup: lookup, random });

function picked(s: Scheduler, blocks = 10, subset?: string[]) {
  const r = s.schedule(aRequest(blocks, subset));
  if (r.kind !== "picked") throw new Error(`expected a pick, got ${r.kind}`);
  return r;
}

describe("Scheduler with GIE's weighted precise profile (precise 3, queue 2, kv 2)", () => {
  const a = anEndpoint("10.0.0.1:8000", { waiting: 2, kvCacheUsage: 0.3 });
  const b = anEndpoint("10.0.0.2:8000", { waiting: 2, kvCacheUsage: 0.3 });
  const c = anEndpoint("10.0.0.3:8000", { waiting: 2, kvCacheUsage: 0.3 });

  it("picks the longest cached prefix at equal load and reports it", () => {
    const lookup = new FakePrefixLookup()
      .hold("10.0.0.1:8000", 3)
      .hold("10.0.0.2:8000", 8)
      .hold("10.0.0.3:8000", 5);
    const r = picked(scheduler(staticSource([a, b, c]), lookup));
    expect(r.endpoint.address).toBe("10.0.0.2:8000");
    expect(r.prefixMatchBlocks).toBe(8);
    expect(r.totalBlocks).toBe(10);
    expect(r.scores.map((s) => s.address)).toEqual(["10.0.0.2:8000", "10.0.0.3:8000", "10.0.0.1:8000"]);
    expect(r.scores[0]).toEqual({
      address: "10.0.0.2:8000",
      total: expect.closeTo(3 * 0.8 + 2 * 1 + 2 * 0.7, 9),
      byScorer: {
        "precise-prefix-cache-scorer": 0.8,
        "queue-scorer": 1,
        "kv-cache-utilization-scorer": expect.closeTo(0.7, 9),
      },
    });
    expect(lookup.calls).toBe(1); // scorer and report share one lookup
  });

  it("lets a lightly loaded pod beat an overloaded one holding the whole prefix", () => {
    const hot = anEndpoint("10.0.0.1:8000", { waiting: 40, kvCacheUsage: 0.95 });
    const idle = anEndpoint("10.0.0.2:8000", { waiting: 0, kvCacheUsage: 0.1 });
    const lookup = new FakePrefixLookup().hold("10.0.0.1:8000", 10);
    const r = picked(scheduler(staticSource([hot, idle]), lookup));
    expect(r.endpoint.address).toBe("10.0.0.2:8000"); // 0 + 2 + 1.8 = 3.8 > 3 + 0 + 0.1
    expect(r.prefixMatchBlocks).toBe(0);
    expect(r.scores[1]?.byScorer["precise-prefix-cache-scorer"]).toBe(1);
  });

  it("credits CPU-resident blocks less than GPU ones", () => {
    const lookup = new FakePrefixLookup().hold("10.0.0.1:8000", 10, 0.8).hold("10.0.0.2:8000", 9, 1);
    expect(picked(scheduler(staticSource([a, b]), lookup)).endpoint.address).toBe("10.0.0.2:8000");
  });

  it("breaks ties at random: every tied candidate gets picked over many runs", () => {
    const s = scheduler(staticSource([a, b, c]), new FakePrefixLookup());
    const counts = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const address = picked(s).endpoint.address;
      counts.set(address, (counts.get(address) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual(["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"]);
    const rng = (v: number) => () => v; // the injected random decides the tie
    expect(picked(scheduler(staticSource([a, b]), null, rng(0))).endpoint.address).toBe("10.0.0.2:8000");
    expect(picked(scheduler(staticSource([a, b]), null, rng(0.99))).endpoint.address).toBe("10.0.0.1:8000");
  });

  it("maps endpoints to the index's pod ids: ip:port, else bare ip (bind-mode topics), else load only", () => {
    const lookup = new FakePrefixLookup().hold("10.0.0.1", 4).hold("10.0.0.2:8000", 6);
    const r = picked(scheduler(staticSource([a, b, c]), lookup));
    const prefix = Object.fromEntries(
      r.scores.map((s) => [s.address, s.byScorer["precise-prefix-cache-scorer"]]),
    );
    expect(prefix).toEqual({ "10.0.0.1:8000": 0.4, "10.0.0.2:8000": 0.6, "10.0.0.3:8000": 0 });
  });

  it("scores a request shorter than one block on load alone", () => {
    const busy = anEndpoint("10.0.0.1:8000", { waiting: 5 });
    const r = picked(scheduler(staticSource([busy, b]), new FakePrefixLookup().hold("10.0.0.1:8000", 4)), 0);
    expect(r).toMatchObject({ endpoint: { address: "10.0.0.2:8000" }, prefixMatchBlocks: 0, totalBlocks: 0 });
  });

  it("restricts candidates to the subset hint and answers no-endpoints for an empty pool or subset", () => {
    const store = new EndpointStore();
    const s = scheduler(store, new FakePrefixLookup().hold("10.0.0.1:8000", 10));
    expect(s.schedule(aRequest(10))).toEqual({ kind: "no-endpoints" });
    store.replaceAll(parseEndpointList("10.0.0.1:8000,10.0.0.2:8000,10.0.0.3:8000"));
    for (let i = 0; i < 20; i++)
      expect(picked(s, 10, ["10.0.0.2:8000", "10.0.0.3:8000"]).endpoint.address).not.toBe("10.0.0.1:8000");
    expect(s.schedule(aRequest(10, []))).toEqual({ kind: "no-endpoints" });
    expect(s.schedule(aRequest(10, ["10.9.9.9:1"]))).toEqual({ kind: "no-endpoints" });
  });

  it("drops pods with failed or stale scrapes while a fresh pod exists, and fails open otherwise", () => {
    const down = anEndpoint("10.0.0.1:8000", {}, "failed");
    const stale = anEndpoint("10.0.0.2:8000", {}, "stale");
    const lookup = new FakePrefixLookup().hold("10.0.0.1:8000", 10).hold("10.0.0.2:8000", 9);
    const fresh = anEndpoint("10.0.0.3:8000", { waiting: 30, kvCacheUsage: 0.99 });
    const r = picked(scheduler(staticSource([down, stale, fresh]), lookup));
    expect(r.endpoint.address).toBe("10.0.0.3:8000");
    expect(r.scores).toHaveLength(1);
    // Metrics outage everywhere: nothing is dropped, load scores are 0, so the cache decides.
    const outage = picked(scheduler(staticSource([down, stale]), lookup));
    expect(outage.endpoint.address).toBe("10.0.0.1:8000");
    expect(outage.scores[0]?.total).toBe(3);
  });
});

describe("Scheduler with kvpick's default profile (TTFT cost, speculative entries, dispatch credit)", () => {
  const defaults = parseConfig({}).scheduling;
  const kvpick = (source: EndpointSource, lookup: PrefixLookup | null, now = () => 0, random = Math.random) =>
    createScheduler(defaults, { endpoints: source, ...readModel(defaults, lookup, now), now, random });
  const a = anEndpoint("10.0.0.1:8000", { waiting: 0, running: 10, kvCacheUsage: 0.3 });
  const b = anEndpoint("10.0.0.2:8000", { waiting: 0, running: 10, kvCacheUsage: 0.3 });
  const c = anEndpoint("10.0.0.3:8000", { waiting: 0, running: 10, kvCacheUsage: 0.3 });

  it("picks the longest cached prefix at equal load", () => {
    const lookup = new FakePrefixLookup()
      .hold("10.0.0.1:8000", 3)
      .hold("10.0.0.2:8000", 8)
      .hold("10.0.0.3:8000", 5);
    const r = kvpick(staticSource([a, b, c]), lookup).schedule(aRequest(10));
    expect(r).toMatchObject({ kind: "picked", endpoint: { address: "10.0.0.2:8000" }, prefixMatchBlocks: 8 });
  });

  it("lets a lightly loaded pod beat an overloaded one holding the whole prefix", () => {
    const hot = anEndpoint("10.0.0.1:8000", { waiting: 40, running: 200, kvCacheUsage: 0.95 });
    const lookup = new FakePrefixLookup().hold("10.0.0.1:8000", 100);
    const r = kvpick(staticSource([hot, b]), lookup).schedule(aRequest(100));
    expect(r).toMatchObject({ kind: "picked", endpoint: { address: "10.0.0.2:8000" }, prefixMatchBlocks: 0 });
  });

  it("breaks ties at random", () => {
    const s = kvpick(staticSource([a, b, c]), new FakePrefixLookup());
    const seen = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const r = s.schedule(aRequest(10));
      if (r.kind === "picked") seen.add(r.endpoint.address);
    }
    expect([...seen].sort()).toEqual(["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"]);
  });

  it("lands a burst sharing a new prefix together before any KV event, until the speculative entries expire", () => {
    let now = 0;
    const index = new BlockIndex({ maxEntries: 1000, mediumWeights: { GPU: 1, CPU: 0.8 } });
    const other = BigUint64Array.of(1n);
    for (const e of [a, b, c]) index.store(e.address, "GPU", new Uint32Array(other.buffer), 1); // pods are known
    const s = kvpick(staticSource([a, b, c]), index, () => now);
    const picks = new Set<string>();
    const first = s.schedule(aRequest(50));
    expect(first).toMatchObject({ kind: "picked", prefixMatchBlocks: 0 });
    for (let i = 0; i < 5; i++) {
      const r = s.schedule(aRequest(50));
      if (r.kind !== "picked") throw new Error(r.kind);
      picks.add(r.endpoint.address);
      expect(r.prefixMatchBlocks).toBe(50); // speculative: what was routed there counts as cached
    }
    expect([...picks]).toEqual([first.kind === "picked" ? first.endpoint.address : ""]);
    now = 2001; // no BlockStored arrived within the TTL: the guess is gone
    expect(s.schedule(aRequest(50))).toMatchObject({ kind: "picked", prefixMatchBlocks: 0 });
  });

  it("spills a hot prefix to a second pod as the backlog kvpick routed to the first one grows", () => {
    const firstSpill = (parameters: Record<string, unknown>) => {
      const store = new EndpointStore({ now: () => 0 });
      store.replaceAll(parseEndpointList("10.0.0.1:8000,10.0.0.2:8000"));
      for (const e of store.specs())
        store.recordMetrics(e.address, { ...a.metrics!, running: 10, kvCacheUsage: 0.3 });
      const lookup = new FakePrefixLookup().hold("10.0.0.1:8000", 90); // 90 of each request's 100 blocks
      const config = parseConfig({ scheduling: { scorers: [{ type: "ttft-cost-scorer", parameters }] } });
      const s = createScheduler(config.scheduling, {
        endpoints: store,
        ...readModel(config.scheduling, lookup, () => 0),
        now: () => 0,
      });
      const picks: string[] = [];
      for (let i = 0; i < 30; i++) {
        // Each request shares the first 90 blocks and brings 10 of its own (the fake index ignores hashes).
        const req = aRequest(100);
        req.blockHashes.fill(BigInt(i + 1000), 90);
        const r = s.schedule(req);
        if (r.kind !== "picked") throw new Error(r.kind);
        picks.push(r.endpoint.address);
        store.dispatch(r.endpoint.address, (100 - r.prefixMatchBlocks) * 64); // as the director does
      }
      const at = picks.indexOf("10.0.0.2:8000");
      expect(picks.slice(0, at).every((p) => p === "10.0.0.1:8000")).toBe(true);
      return at;
    };
    // Each request adds its 640 new tokens to the first pod's backlog. Without heat, recomputing the whole
    // 6,400-token prompt on the idle pod (charged 1.75×) wins once that backlog passes ~10,600 tokens; a prefix
    // requested this often is replicated sooner.
    const cold = firstSpill({ heatSeconds: 0 });
    expect(cold).toBeGreaterThan(12);
    expect(cold).toBeLessThan(25);
    const hot = firstSpill({});
    expect(hot).toBeGreaterThan(3);
    expect(hot).toBeLessThan(cold);
  });
});

describe("Scheduler core", () => {
  const e1 = anEndpoint("10.0.0.1:80");
  const e2 = anEndpoint("10.0.0.2:80");
  const rogue = (values: number[]): Scorer => ({
    type: "rogue",
    name: "rogue",
    role: "scorer",
    score: () => values,
  });
  const base = {
    filters: [],
    picker: {
      type: "p",
      name: "p",
      role: "picker" as const,
      pick: (_c: unknown, s: readonly { endpoint: Endpoint; total: number }[]) => s.slice(0, 1),
    },
  };
  const context = { random: Math.random };

  it("clamps scores to [0, 1] (NaN → 0) before weighting", () => {
    const s = new Scheduler({
      profile: { name: "t", ...base, scorers: [{ scorer: rogue([5, Number.NaN]), weight: 2 }] },
      endpoints: staticSource([e1, e2]),
      context,
      lookup: null,
    });
    const r = s.schedule(aRequest(1));
    expect(r.kind === "picked" && r.scores.map((x) => x.total)).toEqual([2, 0]);
  });

  it("answers all-filtered naming the filter that emptied the list", () => {
    const dropAll = { type: "drop", name: "drop-all", role: "filter" as const, filter: () => [] };
    const s = new Scheduler({
      profile: { name: "t", ...base, filters: [dropAll], scorers: [] },
      endpoints: staticSource([e1]),
      context,
      lookup: null,
    });
    expect(s.schedule(aRequest(1))).toEqual({ kind: "all-filtered", filteredBy: "drop-all" });
  });

  it("runs every plugin's preRequest hook once per pick with the winner; a throwing hook fails nothing", () => {
    const seen: string[] = [];
    const errors: string[] = [];
    const hooked = (name: string, fail = false): Scorer => ({
      type: name,
      name,
      role: "scorer",
      score: (_c, list) => list.map(() => 0.5),
      preRequest: (_cycle, picked) => {
        if (fail) throw new Error("boom");
        seen.push(`${name} ${picked.endpoint.address} ${picked.index} ${picked.candidates.length}`);
      },
    });
    const s = new Scheduler({
      profile: {
        name: "t",
        ...base,
        scorers: [
          { scorer: hooked("bad", true), weight: 1 },
          { scorer: hooked("good"), weight: 1 },
        ],
      },
      endpoints: staticSource([e1, e2]),
      context,
      lookup: null,
      onHookError: (source: string) => errors.push(source),
    });
    // The test picker takes the first candidate whatever the scores.
    expect(s.schedule(aRequest(1))).toMatchObject({ kind: "picked", endpoint: { address: "10.0.0.1:80" } });
    expect(seen).toEqual(["good 10.0.0.1:80 0 2"]);
    expect(errors).toEqual(["bad"]);
  });
});
