import { describe, expect, it } from "vitest";
import { SchedulingCycle } from "../cycle-state.js";
import { aRequest, anEndpoint, FakePrefixLookup } from "../scheduling.fixture.js";
import type { PluginContext } from "../types.js";
import { EstimatedPrefixIndex, estimatedPrefixParams } from "./estimated-prefix-index.js";
import { fallbackEstimates, knownToIndex } from "./estimated-fallback.js";

describe("estimated fallback", () => {
  it("estimates only pods that never published, whatever the others hold now", () => {
    const holder = anEndpoint("10.0.0.1:8000");
    const cleared = anEndpoint("10.0.0.2:8000");
    const silent = anEndpoint("10.0.0.3:8000");
    // The holder holds blocks; the cleared pod published (AllBlocksCleared) and holds none; one never published.
    const lookup = new FakePrefixLookup().hold(holder.address, 4).published(cleared.ip);
    expect(knownToIndex(lookup, holder)).toBe(true);
    expect(knownToIndex(lookup, cleared)).toBe(true);
    expect(knownToIndex(lookup, silent)).toBe(false);
    const context: PluginContext = {
      random: Math.random,
      estimatedFallback: new EstimatedPrefixIndex(estimatedPrefixParams.parse({})),
    };
    const request = { ...aRequest(4), promptText: () => "x".repeat(4096) };
    const candidates = [holder, cleared, silent];
    const est = fallbackEstimates(context, new SchedulingCycle(request, lookup), candidates);
    expect(est).not.toBeNull();
    expect(Number.isNaN(est!.fraction[0]!)).toBe(true);
    expect(Number.isNaN(est!.fraction[1]!)).toBe(true);
    expect(Number.isNaN(est!.fraction[2]!)).toBe(false);
  });
});
