import { describe, expect, it } from "vitest";
import { SchedulingCycle } from "../cycle-state.js";
import { aRequest, anEndpoint } from "../scheduling.fixture.js";
import type { SchedulingRequest } from "../types.js";
import { approxPrefixKeys } from "./approx-prefix-keys.js";
import { EstimatedPrefixIndex, estimatedPrefixParams } from "./estimated-prefix-index.js";
import { RoutedPrefixLru } from "./routed-prefix-lru.js";

describe("approxPrefixKeys", () => {
  it("chains full character blocks, ignores the partial tail, caps at maxBlocks, is seeded", () => {
    const a = approxPrefixKeys("x".repeat(64 * 3 + 10), "m", 64, 256);
    expect(a.length).toBe(3);
    const b = approxPrefixKeys(`${"x".repeat(64 * 2)}${"y".repeat(64)}`, "m", 64, 256);
    expect(Array.from(b.slice(0, 2))).toEqual(Array.from(a.slice(0, 2)));
    expect(b[2]).not.toBe(a[2]);
    // A block's key depends on every block before it.
    const c = approxPrefixKeys(`${"y".repeat(64)}${"x".repeat(128)}`, "m", 64, 256);
    expect(c[1]).not.toBe(a[1]);
    expect(approxPrefixKeys("x".repeat(64 * 300), "m", 64, 256).length).toBe(256);
    expect(approxPrefixKeys("x".repeat(64), "other", 64, 256)[0]).not.toBe(a[0]);
    expect(approxPrefixKeys("short", "m", 64, 256).length).toBe(0);
    for (const k of a) expect(Number.isSafeInteger(k)).toBe(true);
  });
});

describe("RoutedPrefixLru", () => {
  it("matches consecutive routed keys per endpoint and evicts the least recently routed", () => {
    let now = 0;
    const lru = new RoutedPrefixLru(() => now);
    const keys = Float64Array.from([1, 2, 3]);
    lru.add("a", keys, 4);
    expect(lru.match("a", keys)).toBe(3);
    expect(lru.match("b", keys)).toBe(0);
    lru.add("a", Float64Array.from([7, 8]), 4);
    expect(lru.match("a", keys)).toBe(0); // key 1 evicted: nothing matches from block 0
    expect(lru.match("a", Float64Array.from([2, 3, 7, 8]))).toBe(4);
    expect(lru.stats()).toEqual({ pods: 1, entries: 4 });
    // Endpoints unseen for long are forgotten.
    now = 11 * 60_000;
    lru.add("b", keys, 4);
    expect(lru.stats()).toEqual({ pods: 1, entries: 3 });
  });
});

describe("RoutedPrefixLru with shared key arrays", () => {
  it("answers a reused (memoised) key array exactly as fresh copies of it, through adds and evictions", () => {
    const shared = new RoutedPrefixLru(() => 0);
    const fresh = new RoutedPrefixLru(() => 0);
    const arrays = [
      [1, 2, 3, 4],
      [1, 2, 5],
      [9, 8, 7, 6, 5],
      [1, 2, 3, 4, 10, 11],
    ].map((a) => Float64Array.from(a));
    let seed = 7;
    const next = (n: number) => {
      seed ^= seed << 13; // xorshift32
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    // Random adds and matches, in any order: a cached answer must never outlive a change of the pod's keys.
    for (let step = 0; step < 20_000; step++) {
      const keys = arrays[next(arrays.length)]!;
      const pod = `p${next(3)}`;
      if (next(2) === 0) {
        const capacity = 4 + next(5);
        shared.add(pod, keys, capacity);
        fresh.add(pod, Float64Array.from(keys), capacity);
      } else {
        expect(shared.match(pod, keys), `step ${step}`).toBe(fresh.match(pod, Float64Array.from(keys)));
      }
    }
    expect(shared.stats()).toEqual(fresh.stats());
  });
});

const request = (text: string, model = "m"): SchedulingRequest => ({
  ...aRequest(0),
  model,
  targetModel: model,
  promptText: () => text,
});

describe("EstimatedPrefixIndex", () => {
  const pods = [anEndpoint("10.0.0.1:80"), anEndpoint("10.0.0.2:80")];
  const cycle = (text: string, model?: string) => new SchedulingCycle(request(text, model), null);

  it("learns only from what was routed, per endpoint, and computes keys once per cycle", () => {
    const index = new EstimatedPrefixIndex(estimatedPrefixParams.parse({ autoTune: false }));
    const doc = "d".repeat(64 * 10);
    const c1 = cycle(`${doc}${"q".repeat(64 * 2)}`);
    expect(index.match(c1, pods)).toEqual({ total: 12, matched: Uint32Array.from([0, 0]), blockTokens: 16 });
    expect(index.keys(c1, pods)).toBe(index.keys(c1, pods));
    index.record(c1, pods, pods[1]!);
    const c2 = cycle(`${doc}${"r".repeat(64 * 2)}`);
    expect(Array.from(index.match(c2, pods).matched)).toEqual([0, 10]);
    expect(Array.from(index.match(cycle(`${doc}`, "other-model"), pods).matched)).toEqual([0, 0]);
    expect(index.match(new SchedulingCycle(aRequest(3), null), pods).total).toBe(0); // no prompt text
  });

  it("auto-tunes the block size (floor 16 tokens) and each pod's capacity from its metrics", () => {
    const index = new EstimatedPrefixIndex(estimatedPrefixParams.parse({}));
    const big = [anEndpoint("10.0.0.1:80", { blockSize: 64, numGpuBlocks: 2 })];
    const c = cycle("z".repeat(256 * 5));
    expect(index.match(c, big).total).toBe(5); // 64 tokens × 4 characters per block
    index.record(c, big, big[0]!);
    expect(index.stats().entries).toBe(2); // capacity = num_gpu_blocks
    const small = new EstimatedPrefixIndex(estimatedPrefixParams.parse({}));
    expect(small.match(cycle("z".repeat(64 * 5)), [anEndpoint("10.0.0.1:80", { blockSize: 8 })]).total).toBe(
      5,
    );
  });
});

describe("EstimatedPrefixIndex with a prompt value", () => {
  it("keys chat messages exactly as their JSON text, and a string prompt as itself", () => {
    const index = new EstimatedPrefixIndex(estimatedPrefixParams.parse({ autoTune: false }));
    const pods = [anEndpoint("10.0.0.1:80")];
    const messages = [
      { role: "system", content: 'Rules: é 東 "quoted" '.repeat(1000) },
      { role: "user", content: "hi", name: undefined },
    ];
    const byValue = new SchedulingCycle({ ...request(""), promptValue: () => messages }, null);
    const byText = new SchedulingCycle(request(JSON.stringify(messages)), null);
    expect(Array.from(index.keys(byValue, pods))).toEqual(Array.from(index.keys(byText, pods)));
    expect(index.keys(byValue, pods).length).toBe(256);
    const prompt = "p".repeat(64 * 3 + 5);
    const str = new SchedulingCycle({ ...request(""), promptValue: () => prompt }, null);
    const byPromptText = new SchedulingCycle(request(prompt), null);
    expect(Array.from(index.keys(str, pods))).toEqual(Array.from(index.keys(byPromptText, pods)));
  });
});

describe("EstimatedPrefixIndex with a body's derived values", () => {
  it("keeps a body's keys in bodyDerived and reuses them for the same body, per shape and seed", () => {
    const index = new EstimatedPrefixIndex(estimatedPrefixParams.parse({ autoTune: false }));
    const pods = [anEndpoint("10.0.0.1:80")];
    const store = new Map<string, unknown>();
    let walked = 0;
    const text = "w".repeat(64 * 20);
    const derived = {
      get: (k: string) => store.get(k),
      set: (k: string, v: unknown) => void store.set(k, v),
    };
    const withStore = (model = "m") =>
      new SchedulingCycle(
        {
          ...request(text, model),
          promptText: () => {
            walked++;
            return text;
          },
          bodyDerived: derived,
        },
        null,
      );
    const first = index.keys(withStore(), pods);
    const again = index.keys(withStore(), pods);
    expect(again).toBe(first);
    expect(walked).toBe(1);
    expect(Array.from(first)).toEqual(Array.from(index.keys(new SchedulingCycle(request(text), null), pods)));
    // Another seed (model) is keyed apart.
    expect(Array.from(index.keys(withStore("other"), pods))).not.toEqual(Array.from(first));
    expect(walked).toBe(2);
  });
});
