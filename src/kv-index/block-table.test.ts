import { describe, expect, it } from "vitest";
import { BlockTable } from "./block-table.js";

/** Random (lo, hi) pairs, plus adversarial ones: small integers, and keys that share a word. */
function keys(n: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = 0; i < n; i++) out.push([(Math.random() * 2 ** 32) >>> 0, (Math.random() * 2 ** 32) >>> 0]);
  for (let i = 0; i < n; i++) out.push([i, 0], [0, i + 1], [7, i + 1]);
  return out;
}

describe("BlockTable", () => {
  for (const maxSlots of [100_000, 2 ** 24, 2 ** 31]) {
    it(`finds every live key and none of the freed ones through growth and churn (maxSlots ${maxSlots})`, () => {
      const table = new BlockTable(maxSlots);
      const ks = keys(20_000);
      const slots = ks.map(([lo, hi]) => table.upsert(lo, hi));
      expect(new Set(slots).size).toBe(ks.length);
      expect(table.count).toBe(ks.length);
      // Free every other key, then re-insert half of them: slots are reused, the others stay found.
      for (let i = 0; i < ks.length; i += 2) table.free(slots[i]!);
      const wrong = (live: (i: number) => boolean) =>
        ks.filter(([lo, hi], i) => table.find(lo, hi) !== (live(i) ? slots[i] : -1)).length;
      expect(wrong((i) => i % 2 === 1)).toBe(0);
      for (let i = 0; i < ks.length; i += 4) slots[i] = table.upsert(...ks[i]!);
      expect(wrong((i) => i % 2 === 1 || i % 4 === 0)).toBe(0);
      expect(table.count).toBe(ks.length * 0.75);
      expect(table.upsert(...ks[1]!)).toBe(slots[1]);
    });
  }

  it("refuses a slot beyond the count its cells can name instead of corrupting the table", () => {
    const table = new BlockTable(3); // 2 bits of slot + 1: slots 0..2
    table.upsert(1, 1);
    table.upsert(2, 2);
    expect(() => {
      for (let i = 3; i < 10; i++) table.upsert(i, i);
    }).toThrow(RangeError);
    expect(table.find(1, 1)).toBe(0);
    expect(table.find(2, 2)).toBe(1);
  });
});
