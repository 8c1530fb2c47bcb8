import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { TokenCache } from "./token-cache.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const ids = (n: number) => new Uint32Array(n);

describe("TokenCache", () => {
  it("returns what was stored, per namespace", () => {
    const c = new TokenCache(1 << 20);
    const a = c.namespace("a");
    const b = c.namespace("b");
    c.set(a, "hello", Uint32Array.of(1, 2));
    expect(Array.from(c.get(a, "hello")!)).toEqual([1, 2]);
    expect(c.get(b, "hello")).toBeUndefined();
    expect(c.namespace("a")).toBe(a);
  });

  it("evicts the least recently used entries when over its byte budget", () => {
    const cost = TokenCache.costOf("k0", 10);
    const c = new TokenCache(cost * 3);
    const ns = c.namespace("m");
    c.set(ns, "k0", ids(10));
    c.set(ns, "k1", ids(10));
    c.set(ns, "k2", ids(10));
    c.get(ns, "k0"); // k1 is now the least recently used
    c.set(ns, "k3", ids(10));
    expect(c.get(ns, "k1")).toBeUndefined();
    expect(c.get(ns, "k0")).toBeDefined();
    expect(c.size).toBe(3);
    expect(c.bytes).toBeLessThanOrEqual(c.maxBytes);
  });

  it("never caches an entry larger than the whole budget, and replaces duplicates", () => {
    const c = new TokenCache(1000);
    const ns = c.namespace("m");
    c.set(ns, "x".repeat(1000), ids(1));
    expect(c.size).toBe(0);
    c.set(ns, "y", ids(1));
    c.set(ns, "y", ids(2));
    expect(c.size).toBe(1);
    expect(c.bytes).toBe(TokenCache.costOf("y", 2));
    c.clear();
    expect(c.bytes).toBe(0);
    expect(c.get(ns, "y")).toBeUndefined();
  });

  it("does not keep the prompt a cached section was cut from alive", () => {
    // Sections are slices of a whole rendered prompt (V8 slices are views of their parent): caching 200 short
    // user turns cut from 200 distinct 400 KB prompts must not retain the prompts (80 MB).
    const cache = new TokenCache(1 << 30);
    const ns = cache.namespace("t");
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 200; i++) {
      const prompt = `${"system prompt ".repeat(28_000)}<|im_start|>user\nQuestion ${i}: may I book a hotel?`;
      const turn = prompt.slice(prompt.lastIndexOf("user"));
      cache.set(ns, turn, Uint32Array.of(i));
    }
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    expect(cache.size).toBe(200);
    expect(cache.get(ns, "user\nQuestion 7: may I book a hotel?")).toEqual(Uint32Array.of(7));
    expect(grown).toBeLessThan(8 * 1024 * 1024);
  });
});
