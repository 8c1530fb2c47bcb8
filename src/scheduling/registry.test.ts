import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/load.js";
import { configProblems } from "../../test/support/config-problems.js";
import { createScheduler } from "./plugins/create-scheduler.js";
import { createPluginRegistry } from "./plugins/index.js";
import { staticSource } from "./scheduling.fixture.js";

const context = { prefixLookup: null, random: Math.random };

const problems = configProblems;

describe("PluginRegistry", () => {
  it("builds kvpick's default profile from Config: the TTFT cost scorer, speculative entries, dispatch credit", () => {
    const config = parseConfig({}).scheduling;
    const s = createScheduler(config, { endpoints: staticSource([]), prefixLookup: null });
    expect(s.profile.filters.map((f) => f.type)).toEqual(["fresh-metrics-filter"]);
    expect(s.profile.scorers.map((x) => [x.scorer.name, x.weight])).toEqual([["ttft-cost-scorer", 1]]);
    expect(s.profile.picker.type).toBe("max-score-picker");
    expect(config).toMatchObject({ speculativeTtlMs: 2000, dispatchCredit: true });
  });

  it("accepts custom weights, names and parameters from config", () => {
    const config = parseConfig({
      scheduling: {
        filters: [],
        scorers: [
          { type: "queue-scorer", name: "q" },
          { type: "precise-prefix-cache-scorer", weight: 5 },
        ],
        picker: { type: "max-score-picker", parameters: { maxNumOfEndpoints: 3 } },
      },
    }).scheduling;
    const s = createScheduler(config, { endpoints: staticSource([]), prefixLookup: null });
    expect(s.profile.scorers.map((x) => [x.scorer.name, x.weight])).toEqual([
      ["q", 1],
      ["precise-prefix-cache-scorer", 5],
    ]);
  });

  it("reports every bad reference with its path", () => {
    const registry = createPluginRegistry();
    const found = problems(() =>
      registry.buildProfile(
        {
          filters: [{ type: "queue-scorer" }],
          scorers: [
            { type: "no-such-scorer" },
            { type: "queue-scorer", weight: -1 },
            { type: "queue-scorer" },
            { type: "kv-cache-utilization-scorer", parameters: { threshold: 1 } },
          ],
          picker: { type: "max-score-picker", parameters: { maxNumOfEndpoints: 0 } },
        },
        context,
      ),
    );
    expect(found).toEqual([
      'scheduling.filters[0].type: "queue-scorer" is a scorer, expected a filter',
      expect.stringMatching(
        /^scheduling\.scorers\[0\]\.type: unknown plugin type "no-such-scorer" \(known: .*queue-scorer/,
      ),
      "scheduling.scorers[1].weight: expected a number ≥ 0, got -1",
      'scheduling.scorers[2].name: duplicate plugin name "queue-scorer" (also scheduling.scorers[1])',
      "scheduling.scorers[3].parameters.threshold: unknown field",
      expect.stringMatching(/^scheduling\.picker\.parameters\.maxNumOfEndpoints: .*got 0$/),
    ]);
  });

  it("rejects a config whose plugin reference has unknown fields", () => {
    expect(
      problems(() => parseConfig({ scheduling: { picker: { type: "max-score-picker", wieght: 1 } } })),
    ).toEqual(["scheduling.picker.wieght: unknown field"]);
  });
});
