import { describe, expect, it } from "vitest";
import { ApproxKeyHasher, approxPrefixKeys } from "./approx-prefix-keys.js";
import { feedJson, PieceCache } from "./prompt-json-keys.js";
import { seededRng } from "../../../test/support/seeded-rng.js";

const rng = seededRng;

const ALPHABET = ["a", "é", '"', "\\", "\n", "\u0001", "東", "😀", "\ud83d", "\udc00", " ", "\u2028", "</"];

function randomValue(r: () => number, depth: number, shared: string[]): unknown {
  const pick = r();
  if (depth > 4 || pick < 0.35) {
    if (pick < 0.1) return shared[Math.floor(r() * shared.length)];
    const n = Math.floor(r() * (r() < 0.2 ? 900 : 30));
    let s = "";
    for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(r() * ALPHABET.length)];
    return s;
  }
  if (pick < 0.45) return [1, -0, 2.5, 1e21, -3e-7, Number.NaN, true, false, null][Math.floor(r() * 9)];
  if (pick < 0.7) return Array.from({ length: Math.floor(r() * 5) }, () => randomValue(r, depth + 1, shared));
  const o: Record<string, unknown> = {};
  for (let i = Math.floor(r() * 5); i > 0; i--) {
    const key = ["role", "content", "10", "2", 'na"me', "x"][Math.floor(r() * 6)]!;
    o[key] = r() < 0.1 ? undefined : randomValue(r, depth + 1, shared);
  }
  return o;
}

const keysOf = (v: unknown, seed: string, blockChars: number, max: number, cache: PieceCache | null) => {
  const h = new ApproxKeyHasher(seed, blockChars, max);
  feedJson(h, v, cache);
  return Array.from(h.keys());
};

describe("feedJson", () => {
  it("gives exactly the keys of JSON.stringify's text, with and without the piece cache", () => {
    const r = rng(7);
    const shared = Array.from(
      { length: 4 },
      (_, i) => `System prompt ${i}: ${'policy é 東 "quoted" '.repeat(60)}`,
    );
    const cache = new PieceCache(64 * 1024);
    for (let c = 0; c < 400; c++) {
      const value = randomValue(r, 0, shared);
      const blockChars = [1, 3, 16, 64][c % 4]!;
      const max = [1, 7, 256][c % 3]!;
      const expected = Array.from(approxPrefixKeys(JSON.stringify(value) ?? "", "m\u0000", blockChars, max));
      expect(keysOf(value, "m\u0000", blockChars, max, null), `case ${c}`).toEqual(expected);
      // Twice with the cache: the second run replays cached transitions.
      expect(keysOf(value, "m\u0000", blockChars, max, cache), `case ${c}`).toEqual(expected);
      expect(keysOf(value, "m\u0000", blockChars, max, cache), `case ${c}`).toEqual(expected);
    }
  });

  it("keys a conversation sharing a long system prompt like its JSON text, from the cache", () => {
    const cache = new PieceCache();
    const system = "You are a travel assistant. ".repeat(2000);
    for (const question of ["May I book a hotel?", "And a train?"]) {
      const messages = [
        { role: "system", content: system },
        { role: "user", content: question },
      ];
      const expected = Array.from(approxPrefixKeys(JSON.stringify(messages), "s", 64, 256));
      expect(keysOf(messages, "s", 64, 256, cache)).toEqual(expected);
    }
  });

  it("walks a 100,000-deep value without recursion and stops once the keys are complete", () => {
    let deep: unknown = "leaf";
    for (let i = 0; i < 100_000; i++) deep = { content: [deep] };
    const keys = keysOf([{ role: "user", content: deep }], "s", 64, 256, null);
    expect(keys.length).toBe(256);
    // The same prefix as a shallower value that shares the first 16,384 characters.
    let shallow: unknown = "leaf";
    for (let i = 0; i < 2_000; i++) shallow = { content: [shallow] };
    expect(keysOf([{ role: "user", content: shallow }], "s", 64, 256, null)).toEqual(keys);
  });
});
