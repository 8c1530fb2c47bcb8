import { describe, expect, it } from "vitest";
import { FairnessKeys, OTHER_FLOW } from "./fairness-keys.js";

describe("FairnessKeys", () => {
  it("never tracks more than maxFlows ids: idle ones are recycled, busy ones keep their slot", () => {
    const keys = new FairnessKeys(2);
    const busy = new Set<string>();
    expect(keys.keyFor("a", (id) => busy.has(id))).toBe("a");
    expect(keys.keyFor("b", (id) => busy.has(id))).toBe("b");
    busy.add("a");
    busy.add("b");
    expect(keys.keyFor("c", (id) => busy.has(id))).toBe(OTHER_FLOW);
    busy.delete("a");
    expect(keys.keyFor("c", (id) => busy.has(id))).toBe("c");
    expect(keys.keyFor("b", (id) => busy.has(id))).toBe("b");
    for (let i = 0; i < 10_000; i++) keys.keyFor(`client-${i}`, () => true);
    expect(keys.size).toBe(2);
  });
});
