// Format detection in loadConfig: GIE/llm-d EndpointPickerConfig and ACK InferenceTrafficPolicy files and
// texts load (multi-document too), flags still override them, kvpick's own schema is unchanged.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { configProblems } from "../../../test/support/config-problems.js";
import { repoRoot } from "../../../test/support/golden.js";
import { createScheduler } from "../../scheduling/plugins/create-scheduler.js";
import { staticSource } from "../../scheduling/scheduling.fixture.js";
import { translateInferenceTrafficPolicy } from "./inference-traffic-policy.js";
import { loadConfig, loadConfigWithNotes } from "../load.js";

const fixturePath = (name: string) => join(repoRoot, "test", "fixtures", "configs", name);
const fixtureText = (name: string) => readFileSync(fixturePath(name), "utf8");

describe("ACK InferenceTrafficPolicy", () => {
  it("the reference deployment's tracking policy loads unchanged: kvpick's precise profile, its hashing", () => {
    const { config, notes } = loadConfigWithNotes({ file: fixturePath("ack-inference-traffic-policy.yaml") });
    expect(config.tokenizer).toMatchObject({ blockSize: 64, hashSeed: "42" });
    // Tracking = precise: kvpick's default profile, whose TTFT cost scorer reads the KV-event index.
    expect(config.scheduling).toEqual(loadConfig({}).scheduling);
    expect(notes).toEqual([
      "InferenceTrafficPolicy spec.poolRef",
      expect.stringMatching(/trackingConfig\.tokenProcessorConfig\.model/),
    ]);
  });

  it("estimated mode: GIE's estimated prefix-cache-scorer (3) + queue (2) + KV utilisation (2), estimatedConfig as its parameters", () => {
    const text = fixtureText("ack-inference-traffic-policy.yaml").replace(
      "mode: tracking",
      "mode: estimated",
    );
    const { config, notes } = loadConfigWithNotes({ text });
    expect(config.scheduling.scorers.map((s) => [s.type, s.weight])).toEqual([
      ["prefix-cache-scorer", 3],
      ["queue-scorer", 2],
      ["kv-cache-utilization-scorer", 2],
    ]);
    expect(notes).toContain(
      "InferenceTrafficPolicy spec.profile.single.trafficPolicy.prefixCache.trackingConfig (mode is estimated)",
    );
    createScheduler(config.scheduling, { endpoints: staticSource([]), prefixLookup: null });
    const policy = (estimatedConfig: unknown) => ({
      apiVersion: "inferenceextension.alibabacloud.com/v1alpha1",
      kind: "InferenceTrafficPolicy",
      spec: {
        profile: { single: { trafficPolicy: { prefixCache: { mode: "estimated", estimatedConfig } } } },
      },
    });
    const t = translateInferenceTrafficPolicy(policy({ blockSizeTokens: 64, lruCapacityPerServer: 4802 }));
    expect(t.config.scheduling?.scorers?.[0]).toMatchObject({
      type: "prefix-cache-scorer",
      parameters: { blockSizeTokens: 64, lruCapacityPerServer: 4802 },
    });
    expect(configProblems(() => translateInferenceTrafficPolicy(policy({ lruCapacity: 1 })))).toEqual([
      "spec.profile.single.trafficPolicy.prefixCache.estimatedConfig.lruCapacity: unknown field",
    ]);
  });

  it("the prefix-cache subtree is strict", () => {
    const text = fixtureText("ack-inference-traffic-policy.yaml").replace("hashSeed:", "hashseed:");
    expect(configProblems(() => loadConfig({ text }))).toEqual([
      "spec.profile.single.trafficPolicy.prefixCache.trackingConfig.indexerConfig.tokenProcessorConfig.hashseed: unknown field",
    ]);
  });
});

describe("format detection", () => {
  it("EndpointPickerConfig from a file; flags override it", () => {
    const c = loadConfig({
      file: fixturePath("llm-d-precise.yaml"),
      overrides: { tokenizer: { hashSeed: "7" } },
    });
    expect(c.tokenizer.hashSeed).toBe("7");
    expect(c.tokenizer.blockSize).toBe(64);
    expect(c.scheduling.scorers[0]).toMatchObject({ type: "precise-prefix-cache-scorer", weight: 2 });
  });

  it("multi-document YAML: known kinds are translated, other kinds skipped", () => {
    const text = [
      "apiVersion: inference.networking.k8s.io/v1\nkind: InferencePool\nmetadata: {name: p}\nspec: {}",
      fixtureText("llm-d-precise.yaml"),
    ].join("\n---\n");
    const { config, notes } = loadConfigWithNotes({ text });
    expect(config.scheduling.scorers.map((s) => s.weight)).toEqual([2, 1, 1]);
    expect(notes[0]).toBe('document 1: kind "InferencePool" skipped');
    expect(notes.some((n) => n.startsWith("document 2: EndpointPickerConfig plugins[1]"))).toBe(true);
  });

  it("errors from a translated document name the document and the field", () => {
    const text = `kind: Foo\napiVersion: v1\n---\n${fixtureText("gie-default.yaml").replace("queue-scorer\n", "queue-scorr\n")}`;
    expect(configProblems(() => loadConfig({ text }))[0]).toBe(
      'document 2: plugins[0].type: unknown plugin type "queue-scorr"',
    );
  });

  it("a lone unknown kind, a non-resource beside resources, and several kvpick documents fail", () => {
    expect(configProblems(() => loadConfig({ text: "apiVersion: v1\nkind: ConfigMap\n" }))).toEqual([
      'kind: expected EndpointPickerConfig or InferenceTrafficPolicy, got "ConfigMap"',
    ]);
    expect(
      configProblems(() =>
        loadConfig({ text: `logLevel: debug\n---\n${fixtureText("llm-d-precise.yaml")}` }),
      ),
    ).toEqual(["document 1: not a Kubernetes-style resource (no apiVersion/kind) beside ones that are"]);
    expect(configProblems(() => loadConfig({ text: "logLevel: debug\n---\nlogLevel: info\n" }))).toEqual([
      "--config-text: 2 YAML documents; a kvpick config is one document",
    ]);
  });

  it("kvpick's own schema and empty text still work", () => {
    expect(loadConfig({ text: "logLevel: debug" }).logLevel).toBe("debug");
    expect(loadConfig({ text: "" }).logLevel).toBe("info");
  });
});
