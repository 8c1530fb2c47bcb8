// `npm run bench:routing [-- --quick] [--workloads a,b] [--policies a,b] [--seed N] [--event-delay-ms N]`
// Routing-quality benchmark in virtual time: every policy on the same simulated 8-pod cluster (calibrated
// Qwen3-32B / 2×H100 engines) and the same seeded request stream; writes bench/results/routing.md and SVG
// charts, prints a summary and the issue's target ratios.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_ENGINE_CONFIG } from "../../src/sim/engine-config.js";
import { POLICY_LABELS, POLICY_NAMES, type PolicyName } from "./policies.js";
import { startResult } from "../support/results.js";
import { fmtS, overallTable, type PolicySummary, stageChart, stageTable, versusTable } from "./report.js";
import { summarize } from "./summary.js";
import { runVirtual } from "./virtual-run.js";
import { multiTurn, type Stage, sharedPrefix, siblingBursts, type Workload } from "./workloads.js";

// `--live`: the live mode (real kvpick serve + sim pods on sockets), see live.ts.
if (process.argv.includes("--live")) {
  const { main } = await import("./live.js");
  process.exit(await main(process.argv.slice(2).filter((a) => a !== "--live")));
}

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    workloads: { type: "string", default: "reference,zipf,bursts,multi-turn,hot-prefix" },
    policies: { type: "string", default: POLICY_NAMES.join(",") },
    seed: { type: "string", default: "20250924" },
    "event-delay-ms": { type: "string", default: "50" },
    "stage-seconds": { type: "string" },
    "max-in-flight": { type: "string", default: "512" },
    pods: { type: "string", default: "8" },
    // Every compute cost of the simulated engine divided by this (0.7 = pods 30 % slower than calibrated).
    "engine-speed": { type: "string", default: "1" },
    out: { type: "string", default: "bench/results" },
    // Result name: bench/results/<name>.json, <name>.md and the charts' prefix.
    name: { type: "string" },
  },
});

const quick = values.quick;
const seed = Number(values.seed);
const eventDelaySeconds = Number(values["event-delay-ms"]) / 1000;
const maxInFlight =
  Number(values["max-in-flight"]) > 0 ? Number(values["max-in-flight"]) : Number.POSITIVE_INFINITY;
const stageSeconds = Number(values["stage-seconds"] ?? (quick ? 20 : 60));
const ladder = quick ? [3, 20, 40, 60] : [3, 10, 20, 30, 40, 50, 60];
const stages = (qps: number[]): Stage[] => qps.map((q) => ({ qps: q, seconds: stageSeconds }));
const policies = values.policies.split(",").map((p) => {
  if (!(POLICY_NAMES as readonly string[]).includes(p)) throw new Error(`unknown policy ${p}`);
  return p as PolicyName;
});

const reference = {
  seed,
  stages: stages(ladder),
  groups: 150,
  usersPerGroup: 5,
  systemTokens: 6000,
  questionTokens: 1200,
  outputTokens: 1000,
  zipfAlpha: null,
};

const builders: Record<string, () => Workload> = {
  reference: () =>
    sharedPrefix(
      reference,
      "reference",
      "Reference: inference-perf shared_prefix",
      `150 groups × 5 users, 6,000 system / 1,200 question / 1,000 output tokens (ignore_eos), each arrival one of ` +
        `the 750 fixed prompts at random; Poisson load ${ladder.join(" → ")} QPS, ${stageSeconds} s per stage.`,
    ),
  zipf: () =>
    sharedPrefix(
      { ...reference, seed: seed + 1, zipfAlpha: 1.0 },
      "zipf",
      "Zipf-skewed customers (hot prefixes)",
      `As the reference, but the customer (group) of each arrival is Zipf(α = 1.0) over the 150 groups ` +
        `(the hottest customer ≈ 18 % of traffic); users uniform within a group. Poisson ${ladder.join(" → ")} QPS, ` +
        `${stageSeconds} s per stage.`,
    ),
  bursts: () =>
    siblingBursts({
      seed: seed + 2,
      background: { ...reference, seed: seed + 2, stages: stages(quick ? [5, 10] : [5, 10, 15]) },
      burstEvery: 10,
      burstSize: 16,
    }),
  "hot-prefix": () => {
    const hotLadder = quick ? [8, 24, 40] : [8, 16, 24, 32, 40];
    return sharedPrefix(
      {
        seed: seed + 4,
        stages: stages(hotLadder),
        groups: 40,
        usersPerGroup: 1,
        systemTokens: 8000,
        questionTokens: 2000,
        outputTokens: 150,
        zipfAlpha: 1.2,
        freshQuestions: true,
      },
      "hot-prefix",
      "Hot prefixes that saturate a pod (prefill-bound)",
      `Agent/RAG-style traffic: 40 shared 8,000-token contexts (tool definitions, documents) with Zipf(α = 1.2) ` +
        `popularity (the hottest ≈ 30 % of requests), each request adding its own new 2,000-token part and ` +
        `getting 150 output tokens. Prefill dominates: one pod computes the hot context's new parts at ≈ 8 ` +
        `requests/s, which the hottest context alone exceeds above ≈ 26 QPS; the cluster's prefill capacity is ` +
        `≈ 60 requests/s when every context is cached somewhere. Poisson ${hotLadder.join(" → ")} QPS, ` +
        `${stageSeconds} s per stage.`,
    );
  },
  "multi-turn": () =>
    multiTurn({
      seed: seed + 3,
      stages: stages(quick ? [0.5, 2] : [0.5, 1, 2, 3]),
      groups: 50,
      systemTokens: 4000,
      turns: 5,
      questionTokens: 400,
      outputTokens: 300,
      meanThinkSeconds: 5,
    }),
};

const pods = Number(values.pods);
const speed = Number(values["engine-speed"]);
if (!(Number.isInteger(pods) && pods > 0))
  throw new Error(`--pods must be a positive integer, got ${values.pods}`);
if (!(speed > 0)) throw new Error(`--engine-speed must be > 0, got ${values["engine-speed"]}`);
const engine = {
  ...DEFAULT_ENGINE_CONFIG,
  prefillTokensPerSecond: DEFAULT_ENGINE_CONFIG.prefillTokensPerSecond * speed,
  stepOverheadSeconds: DEFAULT_ENGINE_CONFIG.stepOverheadSeconds / speed,
  attentionSecondsPerContextToken: DEFAULT_ENGINE_CONFIG.attentionSecondsPerContextToken / speed,
};
const hashSeed = "42";
const model = "Qwen/Qwen3-32B";
const outDir = values.out;
const resultName = values.name ?? (quick ? "routing-quick" : "routing");
mkdirSync(outDir, { recursive: true });
const command = `node dist/bench/routing/run.js ${process.argv.slice(2).join(" ")}`.trim();
const result = startResult(resultName, "Routing quality (virtual time)", command);
console.log(`routing benchmark (virtual time): ${command}`);
console.log(
  `seed ${seed}, ${pods} pods, max in flight ${maxInFlight}, event delay ${eventDelaySeconds * 1000} ms, scrape 50 ms, engine ${JSON.stringify(engine)}`,
);

/** The policies of the per-stage TTFT chart of the reference workload (issue 16). */
const STAGE_POLICIES: readonly PolicyName[] = ["random", "precise", "kvpick"];
const overall: (string | number)[][] = [];
const wall0 = performance.now();
const sections: string[] = [];
const ratioLines: string[] = [];
const versus: { title: string; rows: PolicySummary[] }[] = [];
for (const name of values.workloads.split(",")) {
  const build = builders[name];
  if (build === undefined) throw new Error(`unknown workload ${name}`);
  const workload = build();
  const turns = workload.sessions.reduce((n, s) => n + s.turns.length, 0);
  console.log(`\n== ${workload.title}: ${turns} requests`);
  const rows: PolicySummary[] = [];
  for (const policy of policies) {
    const result = runVirtual({
      workload,
      policy,
      seed,
      pods,
      engine,
      eventDelaySeconds,
      scrapeIntervalSeconds: 0.05,
      hashSeed,
      model,
      maxInFlight,
    });
    const summary = summarize(result, workload);
    rows.push({ policy, summary, wallSeconds: result.wallSeconds });
    const f = summary.overall;
    console.log(
      `${policy.padEnd(12)} TTFT p50 ${f.ttftP50.toFixed(3)} p90 ${f.ttftP90.toFixed(3)} p99 ${f.ttftP99.toFixed(3)} s, ` +
        `${Math.round(f.outputTokensPerSecond)} out tok/s, hit ${(f.hitRate * 100).toFixed(1)} %, ` +
        `waiting ${f.meanWaiting.toFixed(1)}, preempt ${f.preemptions}, makespan ${result.makespan.toFixed(0)} s | ` +
        `wall ${result.wallSeconds.toFixed(1)} s (routing ${(result.routingSeconds * 1000).toFixed(0)} ms` +
        `${policy === "kvpick" ? `, ${result.eventBatches} event batches, ${result.indexEntriesAtEnd} index entries` : ""})`,
    );
  }
  versus.push({ title: workload.title, rows });
  const ratios = targetRatios(rows);
  if (ratios.length > 0) {
    console.log(ratios.join("\n"));
    ratioLines.push(`**${workload.title}**`, "", ...ratios.map((r) => `- ${r}`), "");
  }
  let section = `## ${workload.title}\n\n${workload.description}\n\n${overallTable(rows)}\n`;
  if (workload.stages.length > 1) {
    const ttftSvg = `${resultName}-${workload.name}-ttft-p90.svg`;
    const tputSvg = `${resultName}-${workload.name}-throughput.svg`;
    writeFileSync(
      join(outDir, ttftSvg),
      stageChart(rows, {
        title: `${workload.title}: TTFT p90 by stage`,
        yLabel: "TTFT p90 (s, log scale)",
        logY: true,
        value: (s) => s.ttftP90,
      }),
    );
    writeFileSync(
      join(outDir, tputSvg),
      stageChart(rows, {
        title: `${workload.title}: output throughput by stage`,
        yLabel: "output tokens/s (cluster)",
        logY: false,
        value: (s) => s.outputTokensPerSecond,
      }),
    );
    section += `${stageTable(rows)}\n![TTFT p90 vs QPS](${ttftSvg})\n![throughput vs QPS](${tputSvg})\n`;
    const three = STAGE_POLICIES.map((p) => rows.find((r) => r.policy === p)).filter((r) => r !== undefined);
    if (workload.name === "reference" && three.length > 0) {
      const svg = `${resultName}-reference-ttft-stages.svg`;
      writeFileSync(
        join(outDir, svg),
        stageChart(three, {
          title: `${workload.title}: TTFT p50 and p90 by stage`,
          yLabel: "TTFT (s, log scale)",
          logY: true,
          value: (s) => s.ttftP90,
          dashed: { value: (s) => s.ttftP50, solidLabel: "p90", dashedLabel: "p50" },
        }),
      );
      section += `![TTFT p50/p90 per stage](${svg})\n`;
      result.tables.push({
        caption: `Reference workload, TTFT p50 / p90 (s) of the requests that arrived in each stage (chart: \`bench/results/${svg}\`):`,
        columns: ["policy", ...three[0]!.summary.stages.map((s) => `${s.qps} QPS`)],
        rows: three.map((r) => [
          POLICY_LABELS[r.policy],
          ...r.summary.stages.map((s) => `${fmtS(s.ttftP50)} / ${fmtS(s.ttftP90)}`),
        ]),
      });
    }
  }
  overall.push(
    ...rows.map((r) => {
      const f = r.summary.overall;
      return [
        workload.name,
        POLICY_LABELS[r.policy],
        fmtS(f.ttftP50),
        fmtS(f.ttftP90),
        fmtS(f.ttftP99),
        fmtS(f.ttftMean),
        Math.round(f.outputTokensPerSecond).toLocaleString("en-US"),
        `${(f.hitRate * 100).toFixed(1)} %`,
      ];
    }),
  );
  result.notes.push(...ratios.map((r) => `${workload.name}: ${r}`));
  if (ratios.length > 0) section += `\n${ratios.map((r) => `- ${r}`).join("\n")}\n`;
  sections.push(section);
}
const wall = (performance.now() - wall0) / 1000;

const md =
  "# Routing benchmark (virtual time)\n\n" +
  `Generated by \`npm run bench:routing${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}\` ` +
  `(= \`${command}\`), seed ${seed}, wall time ${wall.toFixed(0)} s.\n\n` +
  `Cluster: ${pods} simulated vLLM pods (src/sim Engine + BlockManager, calibrated Qwen3-32B on 2×H100 defaults: ` +
  `${engine.numGpuBlocks} blocks × ${engine.blockSize} tokens, ` +
  `${engine.prefillTokensPerSecond} tokens/s compute, ${engine.stepOverheadSeconds * 1000} ms step ` +
  `overhead, ${engine.attentionSecondsPerContextToken * 1e9} ns per context token, max ${engine.maxNumBatchedTokens} ` +
  `batched tokens) on a discrete-event clock. Load metrics are snapshotted every 50 ms (kvpick's scrape interval); ` +
  `KV events reach kvpick's index ${eventDelaySeconds * 1000} ms after the engine step that produced them, through ` +
  "the production KvEventIngest.handleMessage (msgspec bytes from the simulator's encoder) into a real BlockIndex. " +
  `Client: at most ${Number.isFinite(maxInFlight) ? maxInFlight : "unlimited"} requests in flight (inference-perf's ` +
  "workers × worker concurrency; `--max-in-flight 0` = open loop); arrivals beyond the cap wait at the client, FIFO " +
  "(column client wait), and the offered QPS above the cluster's capacity turns into that backlog. " +
  "TTFT is measured from the request's send (its arrival at the pod (routing is instantaneous in virtual time) to its first " +
  "token; hit rate = Σ cached prompt tokens / Σ prompt tokens as the engines report them (usage cached_tokens); " +
  "output tok/s = all output tokens / (first arrival → last completion); mean waiting queue = vLLM " +
  "num_requests_waiting per pod, averaged over the load window.\n\n" +
  "Policies:\n\n" +
  "- **random**, **round-robin**: no state.\n" +
  "- **load only**: kvpick's scheduler with queue-scorer (w 2) + kv-cache-utilization-scorer (w 2).\n" +
  "- **approximate prefix**: kvpick's production `prefix-cache-scorer` (GIE's estimated scorer) with GIE v1.0's " +
  "parameters (no auto-tuning: 16-token = 64-character blocks, at most 256, an LRU of 31,250 keys per pod) — the " +
  "chat messages' JSON cut into character blocks, chain-hashed, matched against what was *routed* to each pod " +
  "(learnt in preRequest); weights prefix 3 / queue 2 / kv 2 (and 1/1/1). The messages are the token ids rendered " +
  "at 4 characters per token.\n" +
  "- **GIE-weighted precise** (the baseline): fresh-metrics-filter → precise-prefix-cache 3 + queue 2 + " +
  "kv-cache-utilization 2 → max-score-picker over the BlockIndex fed by the pods' KV events — llm-d / ACK precise " +
  "mode — without any of kvpick's post-pick services (no speculative entries, no dispatch credit, no estimated " +
  "fallback).\n" +
  "- **+ speculative entries**, **+ dispatch credit**: the baseline with one of kvpick's services " +
  "(`scheduling.speculativeTtlMs` 2000, `scheduling.dispatchCredit`).\n" +
  "- **TTFT cost scorer alone**: `ttft-cost-scorer` (default parameters) over the same index, without the services.\n" +
  "- **kvpick default**: `createScheduler(parseConfig({}).scheduling, …)` exactly as `kvpick serve` builds it: " +
  "fresh-metrics-filter → ttft-cost-scorer → max-score-picker, speculative entries (2 s) and dispatch credit " +
  "(since the last scrape, and until the first token: the run settles each request's ticket at its first " +
  "token and its end, as the director does from the response stream).\n" +
  "- **kvpick default, pods publish no KV events**: the same profile over an index that never hears from any " +
  "pod: every pod is matched by the estimated fallback (prompt-text blocks against what kvpick routed there).\n" +
  "- **ideal bound**: an oracle. Every pod holds every shared system prompt (pre-warmed before t = 0, with extra KV " +
  "capacity for exactly those blocks, so the working-set capacity is the same as the other pods'), and each request " +
  "goes to the pod with the fewest requests (waiting + running, read exactly, no scrape lag). It is a bound on " +
  "what routing can buy for shared system prompts; conversation history (multi-turn) is *not* assumed cached, so " +
  "precise can beat it there.\n\n" +
  `## kvpick default vs the GIE-weighted precise baseline (policy × workload)\n\n${versusTable(versus)}\n` +
  (ratioLines.length > 0 ? `## Target ratios (issue 5)\n\n${ratioLines.join("\n")}\n` : "") +
  sections.join("\n");
writeFileSync(join(outDir, `${resultName}.md`), md);
console.log(`\nwrote ${join(outDir, `${resultName}.md`)} (wall ${wall.toFixed(0)} s)`);
result.tables.unshift({
  caption:
    `${pods} simulated pods (engine speed ${speed}×), seed ${seed}, max in flight ${Number.isFinite(maxInFlight) ? maxInFlight : "unlimited"}, ` +
    `event delay ${eventDelaySeconds * 1000} ms; ${quick ? "quick mode (shorter, fewer QPS stages)" : "full QPS ladders"}; ` +
    `wall ${wall.toFixed(0)} s. Every table and chart: \`bench/results/${resultName}.md\`.`,
  columns: [
    "workload",
    "policy",
    "TTFT p50 (s)",
    "p90 (s)",
    "p99 (s)",
    "mean (s)",
    "output tok/s",
    "hit rate",
  ],
  rows: overall,
});
result.notes.push(
  "Virtual time: the figures do not depend on the machine's load (deterministic for a seed); only the wall time does.",
);
console.log(`wrote ${result.write()}`);

function targetRatios(rows: readonly PolicySummary[]): string[] {
  const get = (p: PolicyName) => rows.find((r) => r.policy === p)?.summary.overall;
  const kvpick = get("kvpick");
  if (kvpick === undefined) return [];
  const out: string[] = [];
  const r = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : "∞");
  const random = get("random");
  if (random !== undefined)
    out.push(
      `kvpick vs random: TTFT p90 ${r(random.ttftP90, kvpick.ttftP90)}× lower (target ≥ 100×), ` +
        `throughput ${r(kvpick.outputTokensPerSecond, random.outputTokensPerSecond)}× (target ≥ 1.8×)`,
    );
  const approx = get("approximate");
  if (approx !== undefined)
    out.push(`kvpick vs approximate: TTFT p90 ${r(approx.ttftP90, kvpick.ttftP90)}× lower (target ≥ 10×)`);
  const ideal = get("ideal");
  if (ideal !== undefined)
    out.push(`kvpick vs ideal: TTFT p90 ${r(kvpick.ttftP90, ideal.ttftP90)}× the ideal's (target ≤ 2×)`);
  void POLICY_LABELS;
  return out;
}
