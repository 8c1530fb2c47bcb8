import { describe, expect, it } from "vitest";
import { BlockIndex } from "../kv-index/block-index.js";
import { createCacheView, type SharedMatch } from "./cache-view.js";
import { podAddress, podKeyOf } from "./pod-key.js";

const W = { GPU: 1, CPU: 0.8 };
const words = (...h: bigint[]) => new Uint32Array(BigUint64Array.from(h).buffer);
const chain = BigUint64Array.of(1n, 2n, 3n);

describe("the pod-key rule", () => {
  it("keys a pod by its address, else its bare IP, else nothing", () => {
    const known = new Set(["10.0.0.1:8000", "10.0.0.2"]);
    const has = (id: string) => known.has(id);
    expect(podKeyOf(has, { address: "10.0.0.1:8000", ip: "10.0.0.1" })).toBe("10.0.0.1:8000");
    expect(podKeyOf(has, { address: "10.0.0.2:8000", ip: "10.0.0.2" })).toBe("10.0.0.2");
    expect(podKeyOf(has, { address: "10.0.0.3:8000", ip: "10.0.0.3" })).toBeNull();
  });

  it("reads the IP of an IPv4 and a bracketed IPv6 address", () => {
    expect(podAddress("10.0.0.1:8000")).toEqual({ address: "10.0.0.1:8000", ip: "10.0.0.1" });
    expect(podAddress("[fd00::1]:8000")).toEqual({ address: "[fd00::1]:8000", ip: "fd00::1" });
  });
});

describe("createCacheView", () => {
  it("layers the degraded credit and the publishers from the KV-event side over the index", () => {
    const index = new BlockIndex({ maxEntries: 100, mediumWeights: W });
    index.store("10.0.0.1", "GPU", words(1n, 2n), 2);
    index.store("10.0.0.2", "GPU", words(1n, 2n), 2);
    const view = createCacheView({
      index,
      events: {
        published: (pod) => pod === "10.0.0.1" || pod === "10.0.0.9",
        accuracy: (pod) => (pod === "10.0.0.2" ? "degraded" : "exact"),
      },
      degradedCreditFactor: 0.25,
    });
    expect(view.speculative).toBeNull();
    expect(view.local.eventDriven?.("10.0.0.9")).toBe(true); // published, holds nothing
    expect(view.local.eventDriven?.("10.0.0.2")).toBe(false);
    expect(view.local.creditFactor?.("10.0.0.2")).toBe(0.25);
    expect(view.local.creditFactor?.("10.0.0.1")).toBe(1);
  });

  it("counts what was routed as cached under the id the request's view knows the pod by, until the TTL", () => {
    let now = 0;
    const index = new BlockIndex({ maxEntries: 100, mediumWeights: W });
    index.store("10.0.0.1", "GPU", words(9n), 1); // bind mode: known by its bare IP
    const view = createCacheView({ index, speculative: { ttlMs: 100, maxEntries: 10, now: () => now } });
    const pod = { address: "10.0.0.1:8000", ip: "10.0.0.1" };
    const silent = { address: "10.0.0.5:8000", ip: "10.0.0.5" };
    view.routed(view.local, pod, chain);
    view.routed(view.local, silent, chain); // never published: no entries (the estimated fallback covers it)
    expect([...view.local.matchPrefix(chain, ["10.0.0.1", "10.0.0.5"]).blocks]).toEqual([3, 0]);
    now = 101;
    expect([...view.local.matchPrefix(chain, ["10.0.0.1"]).blocks]).toEqual([0]);
  });

  it("moves the blocks to the pod that really served the request", () => {
    const index = new BlockIndex({ maxEntries: 100, mediumWeights: W });
    index.store("[fd00::2]:8000", "GPU", words(9n), 1);
    const view = createCacheView({ index, speculative: { ttlMs: 1000, maxEntries: 10 } });
    view.servedBy("[fd00::2]:8000", chain);
    view.servedBy("10.0.0.7:8000", chain); // unknown to the index: nothing recorded
    expect([...view.local.matchPrefix(chain, ["[fd00::2]:8000", "10.0.0.7"]).blocks]).toEqual([3, 0]);
  });

  it("merges the shared index's answer per request, and falls back to the local view when it has none", async () => {
    const index = new BlockIndex({ maxEntries: 100, mediumWeights: W });
    index.store("10.0.0.1", "CPU", words(1n), 1);
    let answer: Map<string, SharedMatch> | null = new Map([["10.0.0.3", { blocks: 2, weighted: 2 }]]);
    const asked: BigUint64Array[] = [];
    const view = createCacheView({
      index,
      shared: {
        matchesFor: async (c) => {
          asked.push(c);
          return answer;
        },
      },
    });
    expect(view.shared).toBe(true);
    const merged = await view.lookupFor(chain);
    expect([...merged.matchPrefix(chain, ["10.0.0.1", "10.0.0.3"]).blocks]).toEqual([1, 2]);
    expect(merged.eventDriven?.("10.0.0.3")).toBe(true); // only another replica heard from it
    answer = null; // Redis down, slow or failing
    expect(await view.lookupFor(chain)).toBe(view.local);
    expect(await view.lookupFor(new BigUint64Array(0))).toBe(view.local); // nothing to ask
    expect(asked).toHaveLength(2);
  });
});
