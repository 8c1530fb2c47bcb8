// Issue 17's benchmark in virtual time: the two-tenant overload (two-tenant.ts) on 8 simulated pods with
// kvpick's default policy, flow control off vs on (the production FlowController on the virtual clock), plus
// the interactive tenant alone (its unloaded baseline). TTFT is what the client sees: queue wait in kvpick +
// wait at the engine + prefill. Prints a markdown table (bench/README.md "Flow control under overload").
// Rows beyond flow control's own knobs: tenant-kv-budget-filter, priority-reserve-filter (the interactive band's
// dynamic reserve, with the band's own saturation point above 1), forced reserve sizes (its batch cost per
// pod), and pod-side what-ifs (vLLM's --long-prefill-token-threshold, a smaller --max-num-batched-tokens).
// Usage: npm run build && node dist/bench/routing/flow-control-bench.js [--seconds 180] [--overload 2]
//   [--rows 1,2,14] [--reserve 1] [--forced-reserve 2,3] [--interactive-limit 2] [--long-prefill 512]
import { parseArgs } from "node:util";
import { parseConfig } from "../../src/config/load.js";
import { DEFAULT_ENGINE_CONFIG, type EngineConfig } from "../../src/sim/engine-config.js";
import { POLICY_CONFIGS } from "./policies.js";
import { quantile } from "./summary.js";
import { twoTenant } from "./two-tenant.js";
import { type RunResult, runVirtual } from "./virtual-run.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "180" },
    overload: { type: "string", default: "2" },
    seed: { type: "string", default: "17" },
    pods: { type: "string", default: "8" },
    /** A tighter saturation point for the "tuned" row (GIE's defaults are 5 and 0.8). */
    "tuned-queue": { type: "string", default: "1" },
    "tuned-kv": { type: "string", default: "0.5" },
    /** Saturation point of the batch band (priority 0) in the headroom rows. */
    "batch-limit": { type: "string", default: "0.8" },
    /** Saturation point of the interactive band (priority 1) in the reserve rows (> 1: its own pods). */
    "interactive-limit": { type: "string", default: "2" },
    /** Comma-separated row numbers (1-based) to run; default all. */
    rows: { type: "string", default: "" },
    /** tenant-kv-budget-filter's budget in its rows. */
    budget: { type: "string", default: "0.9" },
    /** The engines' `--long-prefill-token-threshold` in the smaller-chunk what-if rows. */
    "long-prefill": { type: "string", default: "512" },
    /** The engines' `--max-num-batched-tokens` in the smaller-step what-if row (vLLM default here 8192). */
    "step-budget": { type: "string", default: "2048" },
    /** priority-reserve-filter's maxPods in its rows (comma-separated: one row set per value). */
    reserve: { type: "string", default: "1" },
    /** Reserve sizes held regardless of demand, one row each (the batch cost of k). */
    "forced-reserve": { type: "string", default: "2,3" },
  },
});
const seconds = Number(values.seconds);
const overload = Number(values.overload);
const seed = Number(values.seed);
const pods = Number(values.pods);
// The sessions name objectives `priority-1` (interactive) and `priority-0` (batch); resolved as configured.
const OBJECTIVES = { "priority-1": 1, "priority-0": 0 };
/** `forwardPriority` is the benchmark's what-if (virtual-run.ts), not a config key. */
const fcConfig = ({ forwardPriority, ...flowControl }: { forwardPriority?: boolean }) => ({
  ...parseConfig({
    tokenizer: { hashSeed: "42" },
    flowControl: { enabled: true, objectives: OBJECTIVES, ...flowControl },
  }).flowControl,
  forwardPriority: forwardPriority === true,
});
const headroom = { saturationLimits: { "0": Number(values["batch-limit"]) } };
const own = { saturationLimits: { "1": Number(values["interactive-limit"]) } };
const interactiveLimit = `interactive band point ${values["interactive-limit"]}`;
const KVPICK_DEFAULTS = POLICY_CONFIGS.kvpick;
const PRIORITY_ENGINE: EngineConfig = { ...DEFAULT_ENGINE_CONFIG, schedulingPolicy: "priority" };
const tuned = {
  queueDepthThreshold: Number(values["tuned-queue"]),
  kvCacheUtilThreshold: Number(values["tuned-kv"]),
};

function run(interactiveOnly: boolean, flowControl: object | null, engine: EngineConfig) {
  const workload = twoTenant({
    seed,
    pods,
    tokensPerSecond: DEFAULT_ENGINE_CONFIG.prefillTokensPerSecond,
    overload,
    seconds,
    interactiveOnly,
  });
  const result = runVirtual({
    workload,
    policy: "kvpick",
    seed,
    pods,
    engine,
    eventDelaySeconds: 0.05,
    scrapeIntervalSeconds: 0.05,
    hashSeed: "42",
    model: "Qwen3-32B",
    maxInFlight: Number.POSITIVE_INFINITY,
    flowControl: flowControl === null ? null : fcConfig(flowControl),
  });
  return { workload, result };
}

function figures(label: string, r: RunResult, offered: Map<string, number>): string {
  const rows: string[] = [];
  const interactive = r.records.filter((x) => x.tenant === "interactive");
  const batch = r.records.filter((x) => x.tenant === "batch");
  const ttft = interactive.map((x) => (x.queueWait ?? 0) + x.clientWait + x.ttft).sort((a, b) => a - b);
  const hit =
    interactive.reduce((n, x) => n + x.cachedTokens, 0) /
    Math.max(
      1,
      interactive.reduce((n, x) => n + x.promptTokens, 0),
    );
  const batchOut = batch.reduce((n, x) => n + x.outputTokens, 0) / Math.max(1e-9, r.makespan);
  const rejected = r.rejected ?? [];
  const by = (tenant: string) => {
    const m = new Map<string, number>();
    for (const x of rejected) if (x.tenant === tenant) m.set(x.code, (m.get(x.code) ?? 0) + 1);
    return [...m].map(([k, v]) => `${k} ${v}`).join(", ") || "0";
  };
  const waits = [...interactive, ...batch].map((x) => x.queueWait ?? 0).sort((a, b) => a - b);
  const batchWaits = batch.map((x) => x.queueWait ?? 0).sort((a, b) => a - b);
  const answered = r.records.length + rejected.length;
  const total = [...offered.values()].reduce((a, b) => a + b, 0);
  const f = (x: number) => (Number.isNaN(x) ? "–" : x.toFixed(3));
  rows.push(
    `| ${label} | ${f(quantile(ttft, 0.5))} | ${f(quantile(ttft, 0.9))} | ${f(quantile(ttft, 0.99))} | ` +
      `${(hit * 100).toFixed(1)} % | ${batch.length} (${Math.round(batchOut)} out tok/s over ${r.makespan.toFixed(0)} s) | ` +
      `interactive: ${by("interactive")}; batch: ${by("batch")} | ` +
      `p50 ${f(quantile(waits, 0.5))} / batch p90 ${f(quantile(batchWaits, 0.9))} | ` +
      `${answered} / ${total}${answered === total ? " ✓" : " ✗"} |`,
  );
  return rows.join("\n");
}

const wall0 = performance.now();
const lines = [
  "| run | interactive TTFT p50 (s) | p90 (s) | p99 (s) | interactive hit rate | batch served | shed (429/503) by reason | queue wait (s) | answered / offered |",
  "|---|---|---|---|---|---|---|---|---|",
];
const point = `queue ${tuned.queueDepthThreshold}, KV ${tuned.kvCacheUtilThreshold}`;
const batchLimit = `batch band point ${values["batch-limit"]}`;
const fcfs = DEFAULT_ENGINE_CONFIG;
const prio = PRIORITY_ENGINE;
const forward = { forwardPriority: true };
const table: Array<[string, boolean, object | null, EngineConfig]> = [
  ["interactive alone (unloaded baseline)", true, null, fcfs],
  ["overload, flow control off", false, null, fcfs],
  ["overload, flow control on (GIE defaults: queue 5, KV 0.8)", false, {}, fcfs],
  [`overload, flow control on (${point})`, false, tuned, fcfs],
  [`overload, on, GIE defaults + ${batchLimit}`, false, headroom, fcfs],
  [`overload, on, ${point} + ${batchLimit}`, false, { ...tuned, ...headroom }, fcfs],
  ["overload, on, GIE defaults + forwardPriority (vLLM priority policy)", false, forward, prio],
  [`overload, on, ${point} + forwardPriority (vLLM priority policy)`, false, { ...tuned, ...forward }, prio],
];
/** The tenant budget rows: kvpick's default profile plus tenant-kv-budget-filter (budget from --budget). */
const BUDGET_FILTER = {
  type: "tenant-kv-budget-filter",
  parameters: { budget: Number(values.budget) },
};
const budgetLabel = `tenant-kv-budget-filter (budget ${values.budget})`;
/** Rows whose scheduling profile adds a filter to kvpick's default one: label → that filter. */
const filterRows = new Map<string, { type: string; parameters: Record<string, unknown> }>();
for (const [label, fc] of [
  [`overload, on, ${point} + ${batchLimit} + ${budgetLabel}`, { ...tuned, ...headroom }],
  [`overload, on, GIE defaults + ${budgetLabel}`, {}],
] as const) {
  table.push([label, false, fc, fcfs]);
  filterRows.set(label, BUDGET_FILTER);
}
/** What-ifs on the pods (not kvpick options): smaller prefill chunks, or a smaller step budget. */
const longPrefill = Number(values["long-prefill"]);
const CHUNKED: EngineConfig = { ...DEFAULT_ENGINE_CONFIG, longPrefillTokenThreshold: longPrefill };
const SMALL_STEPS: EngineConfig = {
  ...DEFAULT_ENGINE_CONFIG,
  maxNumBatchedTokens: Number(values["step-budget"]),
};
const chunkLabel = `pods --long-prefill-token-threshold ${longPrefill}`;
table.push(
  [`overload, on, GIE defaults + ${chunkLabel}`, false, {}, CHUNKED],
  [`overload, on, ${point} + ${batchLimit} + ${chunkLabel}`, false, { ...tuned, ...headroom }, CHUNKED],
  [
    `overload, on, GIE defaults + pods --max-num-batched-tokens ${values["step-budget"]}`,
    false,
    {},
    SMALL_STEPS,
  ],
);
/** The reserve rows: kvpick's default profile plus priority-reserve-filter (maxPods from --reserve). */
for (const k of values.reserve.split(",").filter((x) => x !== "")) {
  const filter = { type: "priority-reserve-filter", parameters: { maxPods: Number(k) } };
  const reserveLabel = `priority-reserve-filter (maxPods ${k})`;
  for (const [label, fc] of [
    [`overload, on, GIE defaults + ${reserveLabel}`, {}],
    [`overload, on, ${point} + ${reserveLabel}`, tuned],
    [`overload, on, ${point} + ${batchLimit} + ${reserveLabel}`, { ...tuned, ...headroom }],
    [`overload, on, GIE defaults + ${interactiveLimit} + ${reserveLabel}`, own],
    [`overload, on, ${point} + ${interactiveLimit} + ${reserveLabel}`, { ...tuned, ...own }],
  ] as const) {
    table.push([label, false, fc, fcfs]);
    filterRows.set(label, filter);
  }
}
/** The reserve's batch cost against its size: k pods held whatever the demand (podTokensPerSecond 1). */
for (const k of values["forced-reserve"].split(",").filter((x) => x !== "")) {
  const label = `overload, on, GIE defaults + ${interactiveLimit} + reserve of ${k} pods (forced)`;
  table.push([label, false, own, fcfs]);
  filterRows.set(label, {
    type: "priority-reserve-filter",
    parameters: { maxPods: Number(k), podTokensPerSecond: 1 },
  });
}
const only = new Set(
  values.rows
    .split(",")
    .filter((x) => x !== "")
    .map(Number),
);
for (const [i, [label, alone, fc, engine]] of table.entries()) {
  if (only.size > 0 && !only.has(i + 1)) continue;
  const extra = filterRows.get(label);
  POLICY_CONFIGS.kvpick =
    extra === undefined ? KVPICK_DEFAULTS : { filters: [{ type: "fresh-metrics-filter" }, extra] };
  const { workload, result } = run(alone, fc, engine);
  const offered = new Map<string, number>();
  for (const s of workload.sessions) offered.set(s.tenant ?? "", (offered.get(s.tenant ?? "") ?? 0) + 1);
  console.error(
    `${label}: ${workload.sessions.length} requests (interactive ${workload.interactiveQps.toFixed(1)}/s, batch ${workload.batchQps.toFixed(1)}/s), wall ${result.wallSeconds.toFixed(1)} s`,
  );
  lines.push(figures(label, result, offered));
}
console.log(lines.join("\n"));
console.error(`total wall ${((performance.now() - wall0) / 1000).toFixed(1)} s`);
