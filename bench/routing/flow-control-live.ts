// Issue 17's overload benchmark LIVE: the two-tenant workload (two-tenant.ts) replayed through a real
// `kvpick serve` (pool, pods and InferenceObjectives `priority-1` → 1 / `priority-0` → 0 from a Kubernetes
// API on loopback), 8 `kvpick sim` pods publishing ZeroMQ KV events, the Envoy stand-in and a streaming
// client sending `x-gateway-inference-objective` / `x-gateway-inference-fairness-id` (live-run.ts), with flow
// control off, on with GIE's defaults (a GIE EndpointPickerConfig with the flowControl feature gate and
// section) and on with the best virtual-time point (kvpick config: queue 1, KV 0.5, batch band 0.8), each next
// to its virtual-time twin (virtual-run.ts, same workload and settings). Every wall-time setting is the
// simulated one / k, so both runs are in simulated seconds. Writes bench/results/flow-control-live.json.
// Usage: npm run bench:flow-control:live [-- --seconds 20 --ttl-seconds 10 --time-scale 0.2 --rows off,gie,tuned,reserve]
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseConfig } from "../../src/config/load.js";
import { DEFAULT_ENGINE_CONFIG } from "../../src/sim/engine-config.js";
import { startResult } from "../support/results.js";
import { type LiveResult, runLive } from "./live-run.js";
import { kvpickFigures, OUTCOME_OF_CODE } from "./kvpick-queue-metrics.js";
import { POLICY_CONFIGS } from "./policies.js";
import { quantile } from "./summary.js";
import { twoTenant } from "./two-tenant.js";
import { type RunResult, runVirtual } from "./virtual-run.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "20" },
    overload: { type: "string", default: "2" },
    seed: { type: "string", default: "17" },
    pods: { type: "string", default: "8" },
    "time-scale": { type: "string", default: "0.2" },
    /** Longest queue wait, simulated seconds (GIE's default 30 s; shorter so short runs reach it). */
    "ttl-seconds": { type: "string", default: "10" },
    rows: { type: "string", default: "baseline,off,gie,tuned,reserve" },
    /** Skip the virtual-time twins. */
    "no-virtual": { type: "boolean", default: false },
    main: { type: "string", default: "dist/src/main.js" },
    /** Do not write bench/results/flow-control-live.json (smoke runs). */
    "no-write": { type: "boolean", default: false },
  },
});
const seconds = Number(values.seconds);
const seed = Number(values.seed);
const pods = Number(values.pods);
const k = Number(values["time-scale"]);
const ttl = Number(values["ttl-seconds"]);
const model = "Qwen3-32B";
const engine = DEFAULT_ENGINE_CONFIG;
const OBJECTIVES = { "priority-1": 1, "priority-0": 0 };
/** Wall ms of a simulated duration. */
const wall = (simMs: number) => Math.max(1, Math.round(simMs / k));

type RowName = "baseline" | "off" | "gie" | "tuned" | "reserve";
interface Row {
  label: string;
  interactiveOnly: boolean;
  /** kvpick's flowControl section for the virtual twin (null = off). */
  virtualFc: object | null;
  /** The config file kvpick serve reads, and flags beside it. */
  configText: string;
  serveArgs: string[];
  /** Filters of kvpick's scheduling profile in the virtual twin (default: kvpick's default profile). */
  virtualFilters?: object[];
}

// Settings in simulated time, as kvpick's defaults are in real time: scrape 50 ms, staleness 2 s,
// speculative entries 2 s, dispatch re-evaluation 20 ms.
const scaledKvpick = (flowControl: object | null, filters?: object[]) =>
  JSON.stringify({
    endpoints: { staleAfterMs: wall(2000) },
    scheduling: { speculativeTtlMs: wall(2000), ...(filters === undefined ? {} : { filters }) },
    ...(flowControl === null
      ? {}
      : {
          flowControl: {
            enabled: true,
            requestTtlMs: wall(ttl * 1000),
            dispatchIntervalMs: wall(20),
            ...flowControl,
          },
        }),
  });
const tuned = { queueDepthThreshold: 1, kvCacheUtilThreshold: 0.5, saturationLimits: { "0": 0.8 } };
// The virtual table's recommended row: GIE's detector defaults, the interactive band's own saturation point 2
// and priority-reserve-filter (maxPods 1). Its time settings are in simulated time like kvpick's others, and
// its token rate per pod too (the pods run k × real time).
const reserveFc = { saturationLimits: { "1": 2 } };
const reserveFilters = (scale: (ms: number) => number, rate: number) => [
  { type: "fresh-metrics-filter" },
  {
    type: "priority-reserve-filter",
    parameters: { maxPods: 1, podTokensPerSecond: rate, idleMs: scale(5000), halfLifeMs: scale(2000) },
  },
];
// GIE v1.5's EndpointPickerConfig: flow control from its feature gate, section and utilization-detector (its
// defaults spelled out), kvpick's default profile named in GIE's plugin vocabulary.
const gieConfig = [
  "apiVersion: inference.networking.x-k8s.io/v1alpha1",
  "kind: EndpointPickerConfig",
  "featureGates:",
  "  - flowControl",
  "plugins:",
  "  - type: utilization-detector",
  "    parameters:",
  "      queueDepthThreshold: 5",
  "      kvCacheUtilThreshold: 0.8",
  "  - type: fresh-metrics-filter",
  "  - type: ttft-cost-scorer",
  "  - type: max-score-picker",
  "schedulingProfiles:",
  "  - name: default",
  "    plugins:",
  "      - pluginRef: fresh-metrics-filter",
  "      - pluginRef: ttft-cost-scorer",
  "      - pluginRef: max-score-picker",
  "flowControl:",
  `  defaultRequestTTL: ${wall(ttl * 1000)}ms`,
  "  maxBytes: 1Gi",
  "  defaultPriorityBand:",
  "    fairnessPolicyRef: round-robin-fairness-policy",
  "    orderingPolicyRef: fcfs-ordering-policy",
  "",
].join("\n");
const ROWS: Record<RowName, Row> = {
  baseline: {
    label: "interactive alone (unloaded baseline)",
    interactiveOnly: true,
    virtualFc: null,
    configText: scaledKvpick(null),
    serveArgs: [],
  },
  off: {
    label: "overload, flow control off",
    interactiveOnly: false,
    virtualFc: null,
    configText: scaledKvpick(null),
    serveArgs: [],
  },
  gie: {
    label: "overload, flow control on (GIE EndpointPickerConfig, defaults: queue 5, KV 0.8)",
    interactiveOnly: false,
    virtualFc: {},
    configText: gieConfig,
    // What a GIE config cannot say: the staleness threshold (a GIE flag).
    serveArgs: [`--metrics-staleness-threshold=${wall(2000)}ms`],
  },
  tuned: {
    label: 'overload, on, queue 1, KV 0.5 + saturationLimits {"0": 0.8}',
    interactiveOnly: false,
    virtualFc: tuned,
    configText: scaledKvpick(tuned),
    serveArgs: [],
  },
  reserve: {
    label: 'overload, on, GIE defaults + saturationLimits {"1": 2} + priority-reserve-filter (maxPods 1)',
    interactiveOnly: false,
    virtualFc: reserveFc,
    configText: scaledKvpick(reserveFc, reserveFilters(wall, 4000 * k)),
    serveArgs: [],
    virtualFilters: reserveFilters((ms) => ms, 4000),
  },
};

const f3 = (x: number) => (Number.isNaN(x) ? "–" : x.toFixed(3));

function figures(r: RunResult | LiveResult, offered: number) {
  const interactive = r.records.filter((x) => x.tenant === "interactive");
  const batch = r.records.filter((x) => x.tenant === "batch");
  const ttft = interactive.map((x) => (x.queueWait ?? 0) + x.clientWait + x.ttft).sort((a, b) => a - b);
  const sumOf = (xs: typeof interactive, f: (x: (typeof xs)[number]) => number) =>
    xs.reduce((a, x) => a + f(x), 0);
  const hit =
    sumOf(interactive, (x) => x.cachedTokens) /
    Math.max(
      1,
      sumOf(interactive, (x) => x.promptTokens),
    );
  const batchOut = sumOf(batch, (x) => x.outputTokens) / Math.max(1e-9, r.makespan);
  const rejected = r.rejected ?? [];
  const by = (tenant: string) => {
    const m = new Map<string, number>();
    for (const x of rejected) if (x.tenant === tenant) m.set(x.code, (m.get(x.code) ?? 0) + 1);
    return [...m].map(([c, v]) => `${c} ${v}`).join(", ") || "0";
  };
  const answered = r.records.length + rejected.length;
  const live = "metricsText" in r;
  const timedOut = live ? r.timedOut : 0;
  const lost = live ? r.failed - rejected.length : offered - answered;
  const why = live
    ? Object.entries(r.errors)
        .map(([m, n]) => `${n}× ${m}`)
        .join("; ")
    : "";
  return {
    ttft: [quantile(ttft, 0.5), quantile(ttft, 0.9), quantile(ttft, 0.99)].map(f3),
    hit: `${(hit * 100).toFixed(1)} %`,
    batch: `${batch.length} (${Math.round(batchOut)} out tok/s over ${r.makespan.toFixed(0)} s)`,
    shed: `interactive: ${by("interactive")}; batch: ${by("batch")}`,
    rejected,
    answered: `${answered} / ${offered}${answered === offered ? " ✓" : ` ✗ (${lost} lost, ${timedOut} timed out${why === "" ? "" : `: ${why}`})`}`,
    complete: answered === offered,
  };
}

const argv = process.argv.slice(2);
const command = `node dist/bench/routing/flow-control-live.js ${argv.join(" ")}`.trim();
const result = startResult("flow-control-live", "Flow control under overload, live", command);
const uptimeStart = loadavg().map((x) => x.toFixed(2));
const dir = mkdtempSync(join(tmpdir(), "kvpick-fclive-"));
const columns = [
  "run",
  "interactive TTFT p50 (s)",
  "p90 (s)",
  "p99 (s)",
  "interactive hit rate",
  "batch served",
  "shed (429/503) by reason, clients",
  "kvpick outcomes (queue-duration histogram)",
  "queue wait, dispatched (kvpick metrics)",
  "answered / offered",
  "wall (s)",
];
const rows: (string | number)[][] = [];
let allAnswered = true;
let disagreements = 0;
const wall0 = performance.now();
try {
  for (const name of values.rows.split(",") as RowName[]) {
    const row = ROWS[name];
    if (row === undefined) throw new Error(`unknown row ${name} (${Object.keys(ROWS).join(" | ")})`);
    const workload = twoTenant({
      seed,
      pods,
      tokensPerSecond: engine.prefillTokensPerSecond,
      overload: Number(values.overload),
      seconds,
      interactiveOnly: row.interactiveOnly,
    });
    const offered = workload.sessions.length;
    if (!values["no-virtual"]) {
      const defaults = POLICY_CONFIGS.kvpick;
      if (row.virtualFilters !== undefined)
        POLICY_CONFIGS.kvpick = { filters: row.virtualFilters } as typeof defaults;
      const v = runVirtual({
        workload,
        policy: "kvpick",
        seed,
        pods,
        engine,
        eventDelaySeconds: 0.05,
        scrapeIntervalSeconds: 0.05,
        hashSeed: "42",
        model,
        maxInFlight: Number.POSITIVE_INFINITY,
        flowControl:
          row.virtualFc === null
            ? null
            : {
                ...parseConfig({
                  tokenizer: { hashSeed: "42" },
                  flowControl: {
                    enabled: true,
                    objectives: OBJECTIVES,
                    requestTtlMs: ttl * 1000,
                    ...row.virtualFc,
                  },
                }).flowControl,
                forwardPriority: false,
              },
      });
      POLICY_CONFIGS.kvpick = defaults;
      const x = figures(v, offered);
      allAnswered &&= x.complete;
      rows.push([
        `virtual: ${row.label}`,
        ...x.ttft,
        x.hit,
        x.batch,
        x.shed,
        "–",
        "–",
        x.answered,
        v.wallSeconds.toFixed(0),
      ]);
      console.error(rows[rows.length - 1]!.join(" | "));
    }
    const configFile = join(dir, `${name}.yaml`);
    writeFileSync(configFile, row.configText);
    const live = await runLive({
      workload,
      mode: "precise",
      pods,
      engine,
      timeScale: k,
      hashSeed: "42",
      model,
      maxInFlight: 8192,
      scrapeIntervalMs: wall(50),
      // An idle socket this long = a request left hanging (counted, never waited on forever).
      requestTimeoutSeconds: (ttl + 2.5 * seconds) / k,
      mainJs: values.main,
      configFile,
      serveArgs: row.serveArgs,
      kube: { objectives: OBJECTIVES },
      headersOf: (s) => ({
        "x-gateway-inference-objective": `priority-${s.priority ?? 0}`,
        "x-gateway-inference-fairness-id": s.tenant ?? model,
      }),
    });
    const x = figures(live, offered);
    const m = kvpickFigures(live.metricsText, k);
    // Cross-check: what clients were told against what kvpick counted.
    const clientByOutcome = new Map<string, number>();
    for (const r of x.rejected) {
      const o = OUTCOME_OF_CODE[r.code] ?? `other:${r.code}`;
      clientByOutcome.set(o, (clientByOutcome.get(o) ?? 0) + 1);
    }
    const fcOn = row.virtualFc !== null;
    const mismatches: string[] = [];
    if (fcOn) {
      for (const o of new Set([...clientByOutcome.keys(), ...m.counts.keys()])) {
        if (o === "Dispatched") continue;
        if ((clientByOutcome.get(o) ?? 0) !== (m.counts.get(o) ?? 0))
          mismatches.push(`${o}: clients ${clientByOutcome.get(o) ?? 0}, kvpick ${m.counts.get(o) ?? 0}`);
      }
      // Every dispatched request was routed once (its ext_proc stream reached a pod).
      if ((m.counts.get("Dispatched") ?? 0) !== m.routed)
        mismatches.push(`Dispatched ${m.counts.get("Dispatched") ?? 0} vs routed ${m.routed}`);
    }
    if (live.records.length !== m.routed)
      mismatches.push(
        `completed ${live.records.length} vs routed (inference_objective_request_total) ${m.routed}`,
      );
    disagreements += mismatches.length;
    allAnswered &&= x.complete;
    const outcomes = fcOn
      ? [...m.counts]
          .sort()
          .map(([o, c]) => `${o} ${c}`)
          .join(", ") +
        (mismatches.length === 0 ? " (= clients ✓)" : ` ✗ ${mismatches.join("; ")}`) +
        `; ${m.flows}`
      : mismatches.length === 0
        ? `off (routed ${m.routed} = completed ✓)`
        : `off ✗ ${mismatches.join("; ")}`;
    rows.push([
      `**LIVE**: ${row.label}`,
      ...x.ttft,
      x.hit,
      x.batch,
      x.shed,
      outcomes,
      fcOn ? `mean ${f3(m.meanWait)} (${m.flowWaits}) / p50 ≈ ${m.p50} / p90 ≈ ${m.p90}` : "–",
      x.answered,
      live.wallSeconds.toFixed(0),
    ]);
    console.error(rows[rows.length - 1]!.join(" | "));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const uptimeEnd = loadavg().map((x) => x.toFixed(2));
result.tables.push({ columns, rows });
result.notes.push(
  `Scaled down to fit a shared 2-core machine: ${seconds} simulated s of load (virtual table: 120 s), queue TTL ` +
    `${ttl} s (GIE's default 30 s; shorter so that a short run reaches it — the virtual twins use the same), ` +
    `time scale k = ${k} (the pods run ${k}× real time: every wall-time setting of kvpick — scrape ${wall(50)} ms, ` +
    `staleness ${wall(2000)} ms, TTL, speculative entries ${wall(2000)} ms, dispatch interval ${wall(20)} ms — ` +
    `is the simulated one / k; figures are in simulated seconds: live wall × k). Same 8 pods, prompts and ` +
    `rates as the virtual table (two-tenant.ts, seed ${seed}, ${values.overload}× compute).`,
  `Load average (1/5/15 min) ${uptimeStart.join(" / ")} at the start, ${uptimeEnd.join(" / ")} at the end; live ` +
    "figures depend on it (other engineers share the 2 cores).",
  "GIE row: kvpick reads a GIE v1.5 EndpointPickerConfig (featureGates [flowControl], a flowControl section, " +
    "utilization-detector 5 / 0.8, kvpick's default profile by plugin name); a GIE config cannot set the " +
    "speculative-entry TTL or the dispatch interval, so those stay at kvpick's wall defaults (2 s, 20 ms) there.",
  `Cross-check of clients' 429/503 codes against kvpick's queue-duration outcomes and routed count: ${disagreements === 0 ? "agree in every row" : `${disagreements} disagreement(s), see the rows`}.`,
);
if (!values["no-write"]) console.log(`wrote ${result.write()}`);
console.log(
  [`| ${columns.join(" | ")} |`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n"),
  `\ntotal wall ${((performance.now() - wall0) / 1000).toFixed(0)} s`,
);
process.exitCode = allAnswered && disagreements === 0 ? 0 : 1;
