import { describe, expect, it } from "vitest";
import { TokenCache } from "./token-cache.js";

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
});
