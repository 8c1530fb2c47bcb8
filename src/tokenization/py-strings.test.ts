import { describe, expect, it } from "vitest";
import { pyStrip } from "./py-strings.js";

describe("pyStrip", () => {
  // Expected values are Python 3.11's.
  const cases: [string, string | null, "both" | "left" | "right", string][] = [
    ["\u0085 a \x1f", null, "both", "a"],
    ["\ufeffa\ufeff", null, "both", "\ufeffa\ufeff"],
    ["\n  Hi\n", "\n", "both", "  Hi"],
    ["\n\n  Hi", "\n", "left", "  Hi"],
    ["x \n\n", "\n", "right", "x "],
    ["🚄a🚄", "🚄", "both", "a"],
    ["\u2028 a\u3000", null, "left", "a\u3000"],
    ["", null, "both", ""],
    ["   ", null, "right", ""],
  ];
  for (const [s, chars, side, want] of cases) {
    it(`${side} strip of ${JSON.stringify(s)} by ${JSON.stringify(chars)} is Python's`, () => {
      expect(pyStrip(s, chars, side)).toBe(want);
    });
  }
});
