// The request memo: exact for any body (hits verified byte for byte), kept from a body's second sighting, and
// bounded in bytes.
import { describe, expect, it } from "vitest";
import type { InferenceRequest } from "./openai-request.js";
import { fingerprint, PromptMemo } from "./prompt-memo.js";

const parsedOf = (model: string): InferenceRequest => ({
  model,
  kind: "chat",
  body: { model },
  cacheSalt: null,
  stream: false,
  multimodal: false,
});
const bodyOf = (n: number, fill: string) => Buffer.from(`{"model":"m","x":"${fill.repeat(n)}"}`);

describe("PromptMemo", () => {
  it("keeps a body from its second sighting and finds exactly those bytes", () => {
    const memo = new PromptMemo(1 << 20);
    const a = bodyOf(1000, "a");
    expect(memo.offer("chat", a, parsedOf("m"))).toBeUndefined(); // first sighting: only remembered
    expect(memo.find("chat", a)).toBeUndefined();
    const kept = memo.offer("chat", Buffer.from(a), parsedOf("m"));
    expect(kept).toBeDefined();
    expect(memo.find("chat", Buffer.from(a))).toBe(kept);
    expect(memo.find("completion", a)).toBeUndefined(); // the endpoint kind is part of the key
  });

  it("verifies a hit byte for byte: a body with the same fingerprint is a miss", () => {
    const memo = new PromptMemo(1 << 20);
    const a = bodyOf(4000, "a");
    // One byte changed between two sampled positions: same length, same samples, same tail.
    const b = Buffer.from(a);
    b[1001] = "b".charCodeAt(0);
    expect(fingerprint("chat", b)).toBe(fingerprint("chat", a));
    memo.offer("chat", a, parsedOf("m"));
    memo.offer("chat", a, parsedOf("m"));
    expect(memo.find("chat", a)).toBeDefined();
    expect(memo.find("chat", b)).toBeUndefined();
    // Both can live in the same bucket.
    memo.offer("chat", b, parsedOf("other"));
    memo.offer("chat", b, parsedOf("other"));
    expect(memo.find("chat", b)?.parsed.model).toBe("other");
    expect(memo.find("chat", a)?.parsed.model).toBe("m");
  });

  it("stays within its byte bound, evicting the least recently used body first", () => {
    const max = 64 * 1024;
    const memo = new PromptMemo(max);
    const bodies = Array.from({ length: 40 }, (_, i) => bodyOf(1000 + i, String.fromCharCode(97 + (i % 26))));
    for (const [i, body] of bodies.entries()) {
      memo.offer("chat", body, parsedOf("m"));
      const e = memo.offer("chat", body, parsedOf("m"));
      if (e !== undefined) memo.setChain(e, "k", new BigUint64Array(16), 100);
      if (i > 0) memo.find("chat", bodies[0]!); // the first body stays recently used
      expect(memo.bytes).toBeLessThanOrEqual(max);
    }
    expect(memo.entries).toBeGreaterThan(5);
    expect(memo.entries).toBeLessThan(40);
    expect(memo.find("chat", bodies[0]!)).toBeDefined();
    expect(memo.find("chat", bodies[1]!)).toBeUndefined();
    expect(memo.find("chat", bodies[39]!)?.chain?.promptTokens).toBe(100);
  });

  it("never keeps a body larger than a quarter of its bound, and nothing at all when off", () => {
    const big = new PromptMemo(10_000);
    const off = new PromptMemo(0);
    const body = bodyOf(1000, "a");
    for (let i = 0; i < 3; i++) {
      expect(big.offer("chat", body, parsedOf("m"))).toBeUndefined();
      expect(off.offer("chat", body, parsedOf("m"))).toBeUndefined();
    }
    expect(big.bytes + off.bytes).toBe(0);
  });
});
