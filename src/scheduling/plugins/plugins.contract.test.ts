// Contract suite over every registered plugin: parameters are strict, scores stay in [0, 1] and align with
// the candidates, inputs are never mutated, and empty candidate lists are handled.
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../errors.js";
import { SchedulingCycle } from "../cycle-state.js";
import { FakePrefixLookup, aRequest, anEndpoint } from "../scheduling.fixture.js";
import type { Endpoint, Plugin, PluginContext, Scorer } from "../types.js";
import { BUILTIN_PLUGINS, createPluginRegistry } from "./index.js";

const registry = createPluginRegistry();
const lookup = new FakePrefixLookup().hold("10.0.0.1:80", 7).hold("10.0.0.2", 3, 0.8).hold("10.0.0.4:80", 99);
const context: PluginContext = { random: Math.random };

/** Deterministic pseudo-random states covering fresh, stale, failed and pending pods. */
function states(): Endpoint[][] {
  const out: Endpoint[][] = [[]];
  let seed = 7;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const kinds = ["fresh", "fresh", "stale", "failed", "pending"] as const;
  for (let n = 1; n <= 6; n++) {
    for (let k = 0; k < 5; k++) {
      out.push(
        Array.from({ length: n }, (_, i) =>
          anEndpoint(
            `10.0.0.${i + 1}:80`,
            {
              waiting: Math.floor(rnd() * 50),
              running: Math.floor(rnd() * 20),
              kvCacheUsage: rnd(),
              lora:
                rnd() < 0.5
                  ? null
                  : { maxLora: 2, running: rnd() < 0.5 ? ["m"] : ["a"], waiting: rnd() < 0.5 ? ["m"] : [] },
            },
            kinds[Math.floor(rnd() * kinds.length)],
          ),
        ),
      );
    }
  }
  out.push([anEndpoint("10.0.0.1:80", { waiting: 3 }), anEndpoint("10.0.0.2:80", { waiting: 3 })]); // all equal
  return out;
}

const deepFreeze = <T>(list: T[]): T[] => {
  for (const e of list) Object.freeze(e);
  return Object.freeze(list) as T[];
};

describe.each(BUILTIN_PLUGINS.map((f) => [f.type, f] as const))("plugin %s", (type, factory) => {
  const plugin: Plugin = registry.create({ type }, null, context, "test");

  it("has its type and role, and strict parameters", () => {
    expect(plugin).toMatchObject({ type, name: type, role: factory.role });
    expect(() => registry.create({ type, parameters: { nonsense: 1 } }, null, context, "p")).toThrow(
      ConfigError,
    );
  });

  it("handles every state without mutating its input", () => {
    for (const candidates of states()) {
      const frozen = deepFreeze([...candidates]);
      const before = JSON.stringify(frozen);
      for (const blocks of [0, 1, 10]) {
        const cycle = new SchedulingCycle(aRequest(blocks), lookup);
        if (plugin.role === "scorer") {
          const scores = Array.from(plugin.score(cycle, frozen));
          expect(scores).toHaveLength(frozen.length);
          for (const s of scores) expect(s >= 0 && s <= 1).toBe(true);
        } else if (plugin.role === "filter") {
          const kept = plugin.filter(cycle, frozen);
          for (const e of kept) expect(frozen).toContain(e);
          // Filters fail open, except the conformance filter, which keeps only what its header names.
          if (frozen.length > 0 && type !== "header-based-testing-filter")
            expect(kept.length).toBeGreaterThan(0);
        } else {
          const scored = deepFreeze(frozen.map((endpoint, i) => ({ endpoint, total: (i * 7) % 3 })));
          const targets = plugin.pick(cycle, scored);
          expect(targets.length).toBe(frozen.length === 0 ? 0 : 1);
          for (const t of targets) expect(scored).toContain(t);
          const best = Math.max(...scored.map((s) => s.total));
          if (type === "max-score-picker") for (const t of targets) expect(t.total).toBe(best);
        }
      }
      expect(JSON.stringify(frozen)).toBe(before);
    }
  });
});

describe("individual plugin behaviour", () => {
  const cycle = (blocks = 10) => new SchedulingCycle(aRequest(blocks), lookup);
  const scorer = (type: string) => {
    const p = registry.create({ type }, "scorer", context, "t");
    if (p.role !== "scorer") throw new Error("not a scorer");
    return (list: Endpoint[], blocks = 10) => Array.from(p.score(cycle(blocks), list));
  };

  it("queue-scorer: min-max of waiting, all equal → 1, non-fresh → 0", () => {
    const score = scorer("queue-scorer");
    const e = (n: number, w: number, s: "fresh" | "failed" = "fresh") =>
      anEndpoint(`10.0.0.${n}:80`, { waiting: w }, s);
    expect(score([e(1, 0), e(2, 5), e(3, 10), e(4, 0, "failed")])).toEqual([1, 0.5, 0, 0]);
    expect(score([e(1, 4), e(2, 4)])).toEqual([1, 1]);
  });

  it("kv-cache-utilization-scorer: 1 − usage", () => {
    const score = scorer("kv-cache-utilization-scorer");
    expect(
      score([anEndpoint("10.0.0.1:80", { kvCacheUsage: 0.25 }), anEndpoint("10.0.0.2:80", {}, "pending")]),
    ).toEqual([0.75, 0]);
  });

  it("precise-prefix-cache-scorer: weighted prefix / total blocks, capped by the request length", () => {
    const score = scorer("precise-prefix-cache-scorer");
    const list = [1, 2, 3, 4].map((n) => anEndpoint(`10.0.0.${n}:80`));
    const s = score(list);
    expect(s.map((x) => Math.round(x * 1000) / 1000)).toEqual([0.7, 0.24, 0, 1]);
    expect(score(list, 0)).toEqual([0, 0, 0, 0]);
  });

  it("prefix-cache-scorer (estimated): matched / total key blocks of what preRequest recorded per endpoint", () => {
    const p = registry.create(
      { type: "prefix-cache-scorer", parameters: { autoTune: false } },
      "scorer",
      context,
      "t",
    ) as Scorer;
    const pods = [anEndpoint("10.0.0.1:80"), anEndpoint("10.0.0.2:80")];
    const withText = (text: string) => new SchedulingCycle({ ...aRequest(1), promptText: () => text }, null);
    const doc = "s".repeat(64 * 6);
    const first = withText(`${doc}${"a".repeat(64 * 2)}`);
    expect(Array.from(p.score(first, pods))).toEqual([0, 0]);
    p.preRequest?.(first, { endpoint: pods[0]!, candidates: pods, index: 0 });
    expect(Array.from(p.score(withText(`${doc}${"b".repeat(64 * 2)}`), pods))).toEqual([0.75, 0]);
    expect(Array.from(p.score(new SchedulingCycle(aRequest(1), null), pods))).toEqual([0, 0]); // no text
  });

  it("precise-prefix-cache-scorer: a pod the index never heard of gets the estimated score, unless disabled", () => {
    const fallback = {
      match: () => ({ total: 4, matched: Uint32Array.from([0, 0, 3]), blockTokens: 16 }),
      record: () => {},
      forget: () => {},
    };
    const ctx: PluginContext = { ...context, estimatedFallback: fallback };
    const pods = [1, 2, 3].map((n) => anEndpoint(`10.0.0.${n}:80`)); // 10.0.0.3 is unknown to `lookup`
    const scores = (parameters: Record<string, unknown>) =>
      Array.from(
        (
          registry.create({ type: "precise-prefix-cache-scorer", parameters }, "scorer", ctx, "t") as Scorer
        ).score(cycle(10), pods),
      ).map((x) => Math.round(x * 1000) / 1000);
    expect(scores({})).toEqual([0.7, 0.24, 0.75]);
    expect(scores({ estimatedFallback: false })).toEqual([0.7, 0.24, 0]);
  });

  it("max-score-picker returns maxNumOfEndpoints targets best first", () => {
    const p = registry.create(
      { type: "max-score-picker", parameters: { maxNumOfEndpoints: 2 } },
      "picker",
      context,
      "t",
    );
    if (p.role !== "picker") throw new Error("not a picker");
    const scored = [0.1, 0.9, 0.5].map((total, i) => ({ endpoint: anEndpoint(`10.0.0.${i + 1}:80`), total }));
    expect(p.pick(cycle(), scored).map((s) => s.total)).toEqual([0.9, 0.5]);
  });
  const picker = (type: string, parameters: Record<string, unknown> = {}, random = Math.random) => {
    const p = registry.create({ type, parameters }, "picker", { ...context, random }, "t");
    if (p.role !== "picker") throw new Error("not a picker");
    return p;
  };
  const scoredOf = (totals: number[]) =>
    totals.map((total, i) => ({ endpoint: anEndpoint(`10.0.0.${i + 1}:80`), total }));

  it("running-requests-size-scorer: min-max of running, all equal → 1, non-fresh → 0", () => {
    const score = scorer("running-requests-size-scorer");
    const e = (n: number, r: number, s: "fresh" | "stale" = "fresh") =>
      anEndpoint(`10.0.0.${n}:80`, { running: r }, s);
    expect(score([e(1, 2), e(2, 6), e(3, 10), e(4, 0, "stale")])).toEqual([1, 0.5, 0, 0]);
    expect(score([e(1, 4), e(2, 4)])).toEqual([1, 1]);
  });

  it("lora-affinity-scorer: running 1, room 0.8, waiting 0.6, full 0; base model 1 for all", () => {
    const p = registry.create({ type: "lora-affinity-scorer" }, "scorer", context, "t");
    if (p.role !== "scorer") throw new Error("not a scorer");
    const pods = [
      anEndpoint("10.0.0.1:80", { lora: { maxLora: 2, running: ["sql", "x"], waiting: [] } }),
      anEndpoint("10.0.0.2:80", { lora: { maxLora: 2, running: ["x"], waiting: [] } }),
      anEndpoint("10.0.0.3:80", { lora: { maxLora: 2, running: ["x"], waiting: ["sql"] } }),
      anEndpoint("10.0.0.4:80", { lora: { maxLora: 2, running: ["x", "y"], waiting: [] } }),
      anEndpoint("10.0.0.5:80", { lora: null }),
    ];
    const with_ = (loraAdapter: string | null | undefined, model = "base") =>
      Array.from(
        p.score(
          new SchedulingCycle(
            {
              ...aRequest(1),
              model,
              targetModel: model,
              ...(loraAdapter === undefined ? {} : { loraAdapter }),
            },
            null,
          ),
          pods,
        ),
      );
    expect(with_("sql")).toEqual([1, 0.8, 0.6, 0, 0]);
    expect(with_(undefined, "sql")).toEqual([1, 0.8, 0.6, 0, 0]); // GIE: the target model is the adapter
    expect(with_(null)).toEqual([1, 1, 1, 1, 1]);
  });

  it("random-picker ignores scores and honours maxNumOfEndpoints", () => {
    let i = 0;
    const seq = [0.99, 0];
    const p = picker("random-picker", { maxNumOfEndpoints: 2 }, () => seq[i++ % 2] ?? 0);
    const picked = p.pick(cycle(), scoredOf([0.9, 0.1, 0.5]));
    expect(picked.map((s) => s.total)).toEqual([0.5, 0.1]); // slot 0 ← draw 0.99 → index 2; slot 1 ← index 1
    expect(picker("random-picker").pick(cycle(), [])).toEqual([]);
  });

  it("weighted-random-picker: frequencies follow scores, zero scores never beat positive ones", () => {
    let seed = 1;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const p = picker("weighted-random-picker", {}, rnd);
    const counts = [0, 0, 0];
    const scored = scoredOf([3, 1, 0]);
    for (let n = 0; n < 4000; n++) {
      const [t] = p.pick(cycle(), scored);
      const at = scored.indexOf(t as (typeof scored)[number]);
      counts[at] = (counts[at] ?? 0) + 1;
    }
    expect(counts[2]).toBe(0);
    expect((counts[0] ?? 0) / 4000).toBeGreaterThan(0.7);
    expect((counts[0] ?? 0) / 4000).toBeLessThan(0.8);
    // All zero → uniform; maxNumOfEndpoints draws without replacement.
    const all0 = scoredOf([0, 0, 0, 0]);
    const seen = new Set<number>();
    for (let n = 0; n < 200; n++) seen.add(all0.indexOf(p.pick(cycle(), all0)[0] as (typeof all0)[number]));
    expect(seen.size).toBe(4);
    const three = picker("weighted-random-picker", { maxNumOfEndpoints: 3 }, rnd).pick(
      cycle(),
      scoredOf([1, 2, 0]),
    );
    expect(three.map((s) => s.total).sort()).toEqual([0, 1, 2]);
    expect(three[2]?.total).toBe(0);
  });

  it("header-based-testing-filter keeps the IPs its header names, in header order; no header keeps none", () => {
    const p = registry.create({ type: "header-based-testing-filter" }, "filter", context, "t");
    if (p.role !== "filter") throw new Error("not a filter");
    const pods = [1, 2, 3].map((n) => anEndpoint(`10.0.0.${n}:8000`));
    const run = (header?: string) =>
      p
        .filter(
          new SchedulingCycle(
            {
              ...aRequest(1),
              headers: new Map(header === undefined ? [] : [["test-epp-endpoint-selection", header]]),
            },
            null,
          ),
          pods,
        )
        .map((e) => e.address);
    expect(run("10.0.0.3, 10.0.0.1")).toEqual(["10.0.0.3:8000", "10.0.0.1:8000"]);
    expect(run("10.0.0.2:8000,10.0.0.9")).toEqual(["10.0.0.2:8000"]);
    expect(run()).toEqual([]);
    expect(run("")).toEqual([]);
  });
});
