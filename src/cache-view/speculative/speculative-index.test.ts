import { describe, expect, it } from "vitest";
import { SpeculativeIndex } from "./speculative-index.js";

const chain = (...hashes: bigint[]) => BigUint64Array.from(hashes);
const H = (i: number) => (BigInt(i + 1) * 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
const C = chain(H(0), H(1), H(2), H(3));

describe("SpeculativeIndex", () => {
  it("matches routed blocks from block 0 per pod until their TTL passes", () => {
    let now = 0;
    const spec = new SpeculativeIndex({ ttlMs: 2000, maxEntries: 100, now: () => now });
    spec.add("a", C.subarray(0, 3));
    expect(Array.from(spec.match(C, ["a", "b"]))).toEqual([3, 0]);
    expect(Array.from(spec.match(chain(H(0), H(9)), ["a"]))).toEqual([1]);
    now = 1999;
    expect(Array.from(spec.match(C, ["a"]))).toEqual([3]);
    now = 2000;
    expect(Array.from(spec.match(C, ["a"]))).toEqual([0]);
    spec.sweep();
    expect(spec.stats()).toMatchObject({ entries: 0, added: 3, expired: 3, confirmed: 0 });
  });

  it("continues a prefix the engine already confirmed (start), and never counts a gap", () => {
    const spec = new SpeculativeIndex({ ttlMs: 2000, maxEntries: 100, now: () => 0 });
    spec.add("a", C, 2); // blocks 2, 3 routed; 0, 1 were confirmed by vLLM
    expect(Array.from(spec.match(C, ["a"]))).toEqual([0]); // alone: block 0 is not speculative
    expect(Array.from(spec.match(C, ["a", "b"], Uint32Array.from([2, 1])))).toEqual([4, 1]);
    expect(Array.from(spec.match(C, ["a"], Uint32Array.from([1])))).toEqual([1]); // block 1 unknown: stop
  });

  it("stops matching a cleared pod's entries at once, but matches what is routed to it afterwards", () => {
    let now = 0;
    const spec = new SpeculativeIndex({ ttlMs: 2000, maxEntries: 100, now: () => now });
    spec.add("a", C);
    spec.add("b", C);
    spec.clearPod("a");
    spec.clearPod("unknown"); // ignored
    expect(Array.from(spec.match(C, ["a", "b"]))).toEqual([0, 4]);
    expect(Array.from(spec.match(C, ["a"], Uint32Array.from([1])))).toEqual([1]); // vLLM's own blocks stay
    now = 10;
    spec.add("a", C.subarray(0, 2)); // routed after the clear: counts (the refreshed entries too)
    expect(Array.from(spec.match(C, ["a", "b"]))).toEqual([2, 4]);
    spec.clearPod("a");
    expect(Array.from(spec.match(C, ["a"]))).toEqual([0]);
    // Stale entries leave at their TTL like any other; the pod's number is then reused with a fresh epoch.
    now = 3000;
    spec.sweep();
    expect(spec.stats().entries).toBe(0);
    spec.add("c", C);
    spec.add("a", C.subarray(0, 1));
    expect(Array.from(spec.match(C, ["a", "c"]))).toEqual([1, 4]);
  });

  it("refreshes entries routed again instead of duplicating them", () => {
    let now = 0;
    const spec = new SpeculativeIndex({ ttlMs: 1000, maxEntries: 100, now: () => now });
    spec.add("a", C);
    now = 800;
    spec.add("a", C);
    expect(spec.stats()).toMatchObject({ entries: 4, added: 4 });
    now = 1500; // the first TTL has passed, the refreshed one has not
    spec.sweep();
    expect(Array.from(spec.match(C, ["a"]))).toEqual([4]);
    now = 1800;
    spec.sweep();
    expect(spec.stats()).toMatchObject({ entries: 0, expired: 4 });
  });

  it("counts an entry confirmed when the engine-fed index has the block at expiry", () => {
    let now = 0;
    const confirmed = new Set([H(0)]);
    const spec = new SpeculativeIndex({
      ttlMs: 10,
      maxEntries: 100,
      now: () => now,
      isConfirmed: (_pod, lo, hi) => confirmed.has((BigInt(hi) << 32n) | BigInt(lo)),
    });
    spec.add("a", C.subarray(0, 2));
    now = 10;
    spec.sweep();
    expect(spec.stats()).toMatchObject({ entries: 0, confirmed: 1, expired: 1 });
  });

  it("stays within maxEntries by dropping the oldest entries", () => {
    const spec = new SpeculativeIndex({ ttlMs: 1000, maxEntries: 3, now: () => 0 });
    spec.add("a", C);
    expect(spec.stats()).toMatchObject({ entries: 3, added: 4, evicted: 1 });
    expect(Array.from(spec.match(C, ["a"]))).toEqual([0]); // block 0 went first
    spec.add("b", C.subarray(0, 1));
    expect(spec.size).toBe(3);
    expect(Array.from(spec.match(C, ["b"]))).toEqual([1]);
  });
});
