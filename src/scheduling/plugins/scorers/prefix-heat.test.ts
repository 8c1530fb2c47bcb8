import { describe, expect, it } from "vitest";
import { PrefixHeat } from "./prefix-heat.js";

const words = (...hashes: bigint[]) => new Uint32Array(BigUint64Array.from(hashes).buffer);

describe("PrefixHeat", () => {
  it("counts requests per prefix (by its last block), decaying with the time constant", () => {
    let now = 0;
    const heat = new PrefixHeat(1000, 10, () => now);
    const w = words(0x1111_0000_0000_0001n, 0x2222_0000_0000_0002n);
    expect(heat.heat(w, 1)).toBe(0);
    heat.bump(w, 1);
    heat.bump(w, 1);
    expect(heat.heat(w, 1)).toBe(2);
    expect(heat.heat(w, 0)).toBe(0);
    now = 1000;
    expect(heat.heat(w, 1)).toBeCloseTo(2 / Math.E, 9);
    // Same lo word, other hi word: a different prefix.
    expect(heat.heat(words(0x1111_0000_0000_0001n, 0x9999_0000_0000_0002n), 1)).toBe(0);
  });

  it("keeps at most maxKeys prefixes, forgetting the least recently bumped", () => {
    const heat = new PrefixHeat(1000, 2, () => 0);
    const w = words(1n, 2n, 3n);
    heat.bump(w, 0);
    heat.bump(w, 1);
    heat.bump(w, 0);
    heat.bump(w, 2);
    expect([heat.heat(w, 0), heat.heat(w, 1), heat.heat(w, 2)]).toEqual([2, 0, 1]);
  });
});
