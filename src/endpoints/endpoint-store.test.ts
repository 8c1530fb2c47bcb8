import { describe, expect, it } from "vitest";
import type { EndpointChange, LoadMetrics } from "./endpoint.js";
import { EndpointStore } from "./endpoint-store.js";
import { parseEndpointList } from "./parse-endpoints.js";

const metrics = (waiting: number): LoadMetrics => ({
  waiting,
  running: 1,
  kvCacheUsage: 0.5,
  blockSize: 64,
  numGpuBlocks: 100,
  prefixCachingHashAlgo: "sha256_cbor_64bit",
  lora: null,
});

function fixture() {
  let now = 1000;
  const store = new EndpointStore({ staleAfterMs: 100, now: () => now });
  const changes: string[] = [];
  store.onChange((c: EndpointChange) => changes.push(`${c.kind} ${c.endpoint.address}`));
  return { store, changes, advance: (ms: number) => (now += ms) };
}

describe("EndpointStore", () => {
  it("tells listeners about additions, updates and removals, and replaceAll diffs the set", () => {
    const { store, changes } = fixture();
    store.replaceAll(parseEndpointList("10.0.0.1:80,10.0.0.2:80"));
    store.replaceAll(parseEndpointList("10.0.0.2:80,10.0.0.3:80"));
    const two = store.specs().find((s) => s.address === "10.0.0.2:80");
    expect(two).toBeDefined();
    if (two) expect(store.upsert({ ...two, name: "pod-2" })).toBe(true);
    if (two) expect(store.upsert({ ...two, name: "pod-2" })).toBe(false);
    expect(store.remove("10.0.0.9:80")).toBe(false);
    expect(changes).toEqual([
      "added 10.0.0.1:80",
      "added 10.0.0.2:80",
      "removed 10.0.0.1:80",
      "added 10.0.0.3:80",
      "updated 10.0.0.2:80",
    ]);
    expect(store.size).toBe(2);
  });

  it("keeps working when a listener throws, and unsubscribe stops notifications", () => {
    const store = new EndpointStore();
    const seen: string[] = [];
    store.onChange(() => {
      throw new Error("boom");
    });
    const off = store.onChange((c) => seen.push(c.kind));
    store.replaceAll(parseEndpointList("10.0.0.1:80"));
    off();
    store.remove("10.0.0.1:80");
    expect(seen).toEqual(["added"]);
  });

  it("tracks metrics state: pending → fresh → stale, failed until the next success", () => {
    const { store, advance } = fixture();
    store.replaceAll(parseEndpointList("10.0.0.1:80"));
    expect(store.get("10.0.0.1:80")?.metricsState).toBe("pending");
    store.recordMetrics("10.0.0.1:80", metrics(3));
    expect(store.get("10.0.0.1:80")).toMatchObject({ metricsState: "fresh", metricsAgeMs: 0 });
    advance(101);
    expect(store.get("10.0.0.1:80")?.metricsState).toBe("stale");
    store.recordFailure("10.0.0.1:80", "HTTP 500");
    expect(store.get("10.0.0.1:80")).toMatchObject({ metricsState: "failed", lastScrapeError: "HTTP 500" });
    expect(store.get("10.0.0.1:80")?.metrics?.waiting).toBe(3); // last good reading kept
    store.recordMetrics("10.0.0.1:80", metrics(4));
    expect(store.get("10.0.0.1:80")).toMatchObject({ metricsState: "fresh", lastScrapeError: null });
    expect(store.stats()).toEqual({
      total: 1,
      ready: 1,
      byState: { pending: 0, fresh: 1, stale: 0, failed: 0 },
    });
    store.recordMetrics("10.0.0.9:80", metrics(1)); // unknown (removed) endpoint: ignored
    expect(store.size).toBe(1);
  });

  it("returns ready candidates only, restricted by a subset hint (exact address, else by IP)", () => {
    const { store } = fixture();
    store.replaceAll(parseEndpointList("10.0.0.1:80,10.0.0.1:81,10.0.0.2:80,10.0.0.3:80"));
    store.upsert({ address: "10.0.0.3:80", ip: "10.0.0.3", port: 80, name: null, ready: false });
    const addrs = (subset?: string[] | null) => store.candidates(subset).map((e) => e.address);
    expect(addrs()).toEqual(["10.0.0.1:80", "10.0.0.1:81", "10.0.0.2:80"]);
    expect(addrs(null)).toEqual(["10.0.0.1:80", "10.0.0.1:81", "10.0.0.2:80"]);
    expect(addrs(["10.0.0.1:81"])).toEqual(["10.0.0.1:81"]);
    expect(addrs(["10.0.0.1:9999"])).toEqual(["10.0.0.1:80", "10.0.0.1:81"]); // IP-only, as the reference EPP
    expect(addrs(["10.0.0.2"])).toEqual(["10.0.0.2:80"]);
    expect(addrs(["10.0.0.3:80"])).toEqual([]); // not ready
    expect(addrs([])).toEqual([]);
  });

  it("adds what kvpick dispatched to an endpoint's load until a scrape shows it or its first token comes back", () => {
    const { store, advance } = fixture();
    store.replaceAll(parseEndpointList("10.0.0.1:80,10.0.0.2:80"));
    store.recordMetrics("10.0.0.1:80", metrics(0));
    const credit = () => store.get("10.0.0.1:80")?.dispatched;
    expect(credit()).toEqual({ requests: 0, prefillTokens: 0, pendingPrefillTokens: 0, inflight: 0 });
    const a = store.dispatch("10.0.0.1:80", 1000);
    const b = store.dispatch("10.0.0.1:80", 500);
    expect(credit()).toEqual({ requests: 2, prefillTokens: 1500, pendingPrefillTokens: 1500, inflight: 2 });
    expect(store.get("10.0.0.2:80")?.dispatched?.inflight).toBe(0);
    // A fresh scrape shows them as waiting or running: the since-scrape part is zeroed.
    advance(10);
    store.recordMetrics("10.0.0.1:80", metrics(2));
    expect(credit()).toEqual({ requests: 0, prefillTokens: 0, pendingPrefillTokens: 1500, inflight: 2 });
    a.firstToken();
    a.firstToken(); // once only
    expect(credit()?.pendingPrefillTokens).toBe(500);
    a.done();
    a.done();
    b.done(); // done without a first token (the stream died) also ends the prefill
    expect(credit()).toEqual({ requests: 0, prefillTokens: 0, pendingPrefillTokens: 0, inflight: 0 });
    expect(store.dispatch("10.9.9.9:80", 10).done()).toBeUndefined(); // unknown endpoint: nothing to account
  });

  it("a reading takes back only what was routed before its scrape was requested", () => {
    const { store, advance } = fixture();
    store.replaceAll(parseEndpointList("10.0.0.1:80"));
    store.recordMetrics("10.0.0.1:80", metrics(0));
    const credit = () => store.get("10.0.0.1:80")?.dispatched;
    store.dispatch("10.0.0.1:80", 1000); // before the scrape: in the page
    advance(5);
    const requestedAt = store.now();
    advance(5);
    const late = store.dispatch("10.0.0.1:80", 300); // while the scrape is in flight: not in the page
    const retracted = store.dispatch("10.0.0.1:80", 70);
    retracted.retract?.(); // served elsewhere: never counted
    advance(5);
    store.recordMetrics("10.0.0.1:80", metrics(1), requestedAt);
    expect(credit()).toMatchObject({ requests: 1, prefillTokens: 300, inflight: 2 });
    // The next reading, requested after it, shows the late one too.
    const next = store.now();
    advance(20);
    store.recordMetrics("10.0.0.1:80", metrics(2), next);
    expect(credit()).toMatchObject({ requests: 0, prefillTokens: 0, inflight: 2 });
    late.retract?.(); // too late to take back: the reading already did
    expect(credit()).toMatchObject({ requests: 0, prefillTokens: 0, inflight: 1 });
  });

  it("ages dispatch credit out: since-scrape credit of a pod that stopped answering, prefills never reported", () => {
    let now = 0;
    const store = new EndpointStore({ staleAfterMs: 100, pendingPrefillMaxAgeMs: 1000, now: () => now });
    store.replaceAll(parseEndpointList("10.0.0.1:80"));
    store.recordMetrics("10.0.0.1:80", metrics(0));
    store.dispatch("10.0.0.1:80", 300);
    now = 150; // no scrape since: the reading is stale and so is the credit taken against it
    expect(store.get("10.0.0.1:80")?.dispatched).toMatchObject({ requests: 0, prefillTokens: 0 });
    store.dispatch("10.0.0.1:80", 200);
    expect(store.get("10.0.0.1:80")?.dispatched).toMatchObject({ requests: 1, prefillTokens: 200 });
    expect(store.get("10.0.0.1:80")?.dispatched?.pendingPrefillTokens).toBe(500);
    now = 1100; // the first request's first token was never seen: it stops counting
    expect(store.get("10.0.0.1:80")?.dispatched).toMatchObject({ pendingPrefillTokens: 200, inflight: 2 });
    now = 1200;
    expect(store.get("10.0.0.1:80")?.dispatched).toMatchObject({ pendingPrefillTokens: 0, inflight: 2 });
  });
});
