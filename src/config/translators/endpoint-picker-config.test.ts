import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { configProblems } from "../../../test/support/config-problems.js";
import { repoRoot } from "../../../test/support/golden.js";
import { createScheduler } from "../../scheduling/plugins/create-scheduler.js";
import { staticSource } from "../../scheduling/scheduling.fixture.js";
import { translateEndpointPickerConfig } from "./endpoint-picker-config.js";
import { parseConfig } from "../load.js";

const fixture = (name: string): unknown =>
  parseYaml(readFileSync(join(repoRoot, "test", "fixtures", "configs", name), "utf8"));
const doc = (rest: Record<string, unknown>) => ({
  apiVersion: "inference.networking.x-k8s.io/v1alpha1",
  kind: "EndpointPickerConfig",
  ...rest,
});
const translate = (d: unknown) => translateEndpointPickerConfig(d);
const problems = (d: unknown) => configProblems(() => translate(d));
/** The translated config must also build a scheduler. */
const builds = (d: unknown) => {
  const config = parseConfig(translate(d).config);
  createScheduler(config.scheduling, { endpoints: staticSource([]), prefixLookup: null });
  return config;
};

describe("EndpointPickerConfig", () => {
  it("loads llm-d's precise profile: weights, picker, hashing, events", () => {
    const t = translate(fixture("llm-d-precise.yaml"));
    const c = builds(fixture("llm-d-precise.yaml"));
    expect(c.scheduling.filters).toEqual([]);
    expect(c.scheduling.scorers.map((s) => [s.type, s.weight])).toEqual([
      ["precise-prefix-cache-scorer", 2],
      ["kv-cache-utilization-scorer", 1],
      ["queue-scorer", 1],
    ]);
    expect(c.scheduling.picker.type).toBe("max-score-picker");
    expect(c.tokenizer).toMatchObject({ blockSize: 64, hashSeed: "42" });
    expect(c.kvEvents).toMatchObject({ mode: "bind", endpoint: "tcp://*:5557", topicFilter: "kv@" });
    expect(t.ignored).toEqual(
      expect.arrayContaining([
        "plugins[1].parameters.indexerConfig.kvBlockIndexConfig.enableMetrics",
        "plugins[1].parameters.indexerConfig.tokenizersPoolConfig",
      ]),
    );
  });

  it("maps llm-d's Redis index (kvBlockIndexConfig.redisConfig.address) onto index.redis.url", () => {
    type Doc = { plugins: { parameters: { indexerConfig: Record<string, unknown> } }[] };
    const base = fixture("llm-d-precise.yaml") as Doc;
    const withRedis = (address: string) => {
      const d = structuredClone(base);
      d.plugins[1]!.parameters.indexerConfig.kvBlockIndexConfig = {
        redisConfig: { address, backendType: "valkey" },
        inMemoryConfig: { size: 1000 },
      };
      return d;
    };
    const c = builds(withRedis("redis://10.0.0.9:6379"));
    expect(c.index.redis.url).toBe("redis://10.0.0.9:6379");
    expect(builds(withRedis("redis-master:6379")).index.redis.url).toBe("redis://redis-master:6379");
    expect(translate(withRedis("redis://r:6379")).ignored).toContain(
      "plugins[1].parameters.indexerConfig.kvBlockIndexConfig.inMemoryConfig",
    );
    expect(builds(fixture("llm-d-precise.yaml")).index.redis.url).toBeNull();
  });

  it("loads llm-d-router's producer + prefix-cache-scorer form as kvpick's precise scorer", () => {
    const t = translate(fixture("llm-d-precise-producer.yaml"));
    const c = builds(fixture("llm-d-precise-producer.yaml"));
    expect(c.scheduling.scorers.map((s) => [s.type, s.name, s.weight])).toEqual([
      ["precise-prefix-cache-scorer", "precise-prefix", 2],
      ["kv-cache-utilization-scorer", "kv-cache-utilization-scorer", 2],
      ["queue-scorer", "queue-scorer", 1], // rule 6: scorer weight defaults to 1
    ]);
    expect(c.scheduling.picker.type).toBe("max-score-picker"); // rule 5: filled in
    // blockSizeTokens/hashSeed describe llm-d's own key chain, not vLLM's: left to --block-size/--hash-seed.
    expect(c.tokenizer).toMatchObject({ blockSize: null, hashSeed: null });
    expect(t.ignored).toContainEqual(
      expect.stringMatching(/^plugins\[1\]\.parameters\.tokenProcessorConfig \(llm-d's own/),
    );
    expect(c.kvEvents).toMatchObject({ mode: "connect", port: 5557, topicFilter: "kv@", replayPort: 5558 });
    expect(c.index.mediumWeights).toEqual({ GPU: 1, CPU: 0.8 });
  });

  it("GIE's default profile loads: the estimated prefix-cache-scorer (3) beside queue (2) and KV utilisation (2)", () => {
    const c = builds(fixture("gie-default.yaml"));
    expect(c.scheduling.scorers.map((x) => [x.type, x.weight, x.parameters])).toEqual([
      ["queue-scorer", 2, {}],
      ["kv-cache-utilization-scorer", 2, {}],
      ["prefix-cache-scorer", 3, {}],
    ]);
  });

  it("prefix-cache-scorer takes the parameters of the approx-prefix-cache-producer it names (or the only one)", () => {
    const producer = {
      type: "approx-prefix-cache-producer",
      name: "approx",
      parameters: {
        autoTune: false,
        blockSizeTokens: 64,
        maxPrefixBlocksToMatch: 128,
        lruCapacityPerServer: 4802,
      },
    };
    for (const scorer of [
      { type: "prefix-cache-scorer", parameters: { prefixMatchInfoProducerName: "approx" } },
      { type: "prefix-cache-scorer" },
    ]) {
      const c = builds(doc({ plugins: [producer, scorer] }));
      expect(c.scheduling.scorers).toEqual([
        {
          type: "prefix-cache-scorer",
          name: "prefix-cache-scorer",
          weight: 1,
          parameters: producer.parameters,
        },
      ]);
    }
    expect(problems(doc({ plugins: [{ ...producer, parameters: { lruCapacity: 1 } }] }))).toEqual([
      "plugins[0].parameters.lruCapacity: unknown field",
    ]);
    expect(
      problems(
        doc({ plugins: [{ type: "prefix-cache-scorer", parameters: { prefixMatchInfoProducerName: "x" } }] }),
      ),
    ).toEqual([
      'plugins[0].parameters.prefixMatchInfoProducerName: no precise-prefix-cache-producer or approx-prefix-cache-producer named "x"',
    ]);
    expect(
      problems(doc({ plugins: [{ type: "prefix-cache-scorer", parameters: { blockSizeTokens: 0 } }] })),
    ).toEqual([expect.stringMatching(/^plugins\[0\]\.parameters\.blockSizeTokens: /)]);
  });

  it("llm-d's speculativeIndexing / speculativeTTL set kvpick's speculative entries", () => {
    const producer = (parameters: Record<string, unknown>) =>
      doc({
        plugins: [
          { type: "precise-prefix-cache-producer", parameters },
          {
            type: "prefix-cache-scorer",
            parameters: { prefixMatchInfoProducerName: "precise-prefix-cache-producer" },
          },
        ],
      });
    expect(
      builds(producer({ speculativeIndexing: true, speculativeTTL: "500ms" })).scheduling.speculativeTtlMs,
    ).toBe(500);
    expect(
      builds(producer({ speculativeIndexing: false, speculativeTTL: "5s" })).scheduling.speculativeTtlMs,
    ).toBe(0);
    expect(builds(producer({})).scheduling.speculativeTtlMs).toBe(2000); // kvpick's default when llm-d says nothing
    expect(builds(fixture("llm-d-precise-producer.yaml")).scheduling.speculativeTtlMs).toBe(2000); // "2s"
    expect(problems(producer({ speculativeTTL: "soon" }))).toEqual([
      "plugins[0].parameters.speculativeTTL: expected a duration such as 2s or 500ms",
    ]);
  });

  it("no profiles → one default profile with every filter, scorer and picker instance", () => {
    const c = builds(
      doc({
        plugins: [
          { type: "single-profile-handler" },
          { type: "header-based-testing-filter" },
          { type: "queue-scorer" },
          { type: "metrics-data-source" },
          { type: "weighted-random-picker", parameters: { maxNumOfEndpoints: 2 } },
        ],
      }),
    );
    expect(c.scheduling.filters.map((f) => f.type)).toEqual(["header-based-testing-filter"]);
    expect(c.scheduling.scorers.map((s) => [s.type, s.weight])).toEqual([["queue-scorer", 1]]);
    expect(c.scheduling.picker).toMatchObject({
      type: "weighted-random-picker",
      parameters: { maxNumOfEndpoints: 2 },
    });
  });

  it("applies GIE's loader rules, naming each bad field", () => {
    expect(problems(doc({ plugins: [], extra: 1 }))).toEqual(["extra: unknown field"]);
    expect(problems(doc({ plugins: [{ type: "queue-scorer", params: {} }] }))).toEqual([
      "plugins[0].params: unknown field",
    ]);
    expect(problems(doc({ plugins: [{ type: "queue-scorer" }, { type: "queue-scorer" }] }))).toEqual([
      'plugins[1].name: duplicate plugin name "queue-scorer"',
    ]);
    expect(problems(doc({ plugins: [{ type: "fancy-scorer" }] }))).toEqual([
      'plugins[0].type: unknown plugin type "fancy-scorer"',
    ]);
    expect(
      problems(
        doc({
          plugins: [{ type: "queue-scorer" }],
          schedulingProfiles: [
            { name: "default", plugins: [{ pluginRef: "queue-scorer" }, { pluginRef: "foo" }] },
          ],
        }),
      ),
    ).toEqual(['schedulingProfiles[0].plugins[1].pluginRef: unknown plugin "foo"']);
    expect(
      problems(doc({ plugins: [{ type: "max-score-picker", parameters: { maxNumOfEndpoint: 2 } }] })),
    ).toEqual(["plugins[0].parameters.maxNumOfEndpoint: unknown field"]);
    expect(
      problems(
        doc({
          plugins: [
            { type: "precise-prefix-cache-scorer", parameters: { indexerConfig: { tokenProcessor: {} } } },
          ],
        }),
      ),
    ).toEqual(["plugins[0].parameters.indexerConfig.tokenProcessor: unknown field"]);
    expect(problems({ ...doc({ plugins: [] }), apiVersion: "v1" })).toEqual([
      "apiVersion: expected one of inference.networking.x-k8s.io/v1alpha1, llm-d.ai/v1alpha1",
    ]);
  });

  it("profile handlers and several profiles: one profile only", () => {
    const two = [
      { name: "a", plugins: [] },
      { name: "b", plugins: [] },
    ];
    expect(problems(doc({ plugins: [{ type: "single-profile-handler" }], schedulingProfiles: two }))).toEqual(
      [expect.stringMatching(/^schedulingProfiles: 2 profiles; kvpick runs one/)],
    );
    expect(problems(doc({ plugins: [{ type: "pd-profile-handler" }] }))).toEqual([
      'plugins[0].type: profile handler "pd-profile-handler" is not supported (kvpick runs one profile)',
    ]);
    expect(
      problems(
        doc({
          plugins: [
            { type: "single-profile-handler", name: "a" },
            { type: "single-profile-handler", name: "b" },
          ],
        }),
      ),
    ).toEqual(["plugins: more than one profile handler (a,b)"]);
  });
});
