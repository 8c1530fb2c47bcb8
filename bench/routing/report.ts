// Markdown tables and hand-written SVG line charts (no plotting dependency) of the benchmark's figures.
import { POLICY_LABELS, type PolicyName } from "./policies.js";
import type { Summary } from "./summary.js";

export interface PolicySummary {
  policy: PolicyName;
  summary: Summary;
  wallSeconds: number;
}

export const fmtS = (x: number): string =>
  Number.isNaN(x)
    ? "–"
    : x >= 100
      ? x.toFixed(0)
      : x >= 10
        ? x.toFixed(1)
        : x >= 1
          ? x.toFixed(2)
          : x.toFixed(3);
const fmtInt = (x: number): string => Math.round(x).toLocaleString("en-US");

export function overallTable(rows: readonly PolicySummary[]): string {
  const head =
    "| policy | requests | TTFT p50 (s) | TTFT p90 (s) | TTFT p99 (s) | TTFT mean (s) | output tok/s | prefix hit rate | mean waiting queue | preemptions | client wait mean (s) |\n" +
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  return (
    head +
    rows
      .map(({ policy, summary: { overall: f } }) =>
        [
          POLICY_LABELS[policy],
          fmtInt(f.requests),
          fmtS(f.ttftP50),
          fmtS(f.ttftP90),
          fmtS(f.ttftP99),
          fmtS(f.ttftMean),
          fmtInt(f.outputTokensPerSecond),
          `${(f.hitRate * 100).toFixed(1)} %`,
          f.meanWaiting.toFixed(1),
          fmtInt(f.preemptions),
          fmtS(f.clientWaitMean),
        ].join(" | "),
      )
      .map((l) => `| ${l} |`)
      .join("\n") +
    "\n"
  );
}

/** The policies of the comparison table: the field's baseline, kvpick's pieces one by one, kvpick's default. */
const VERSUS: readonly PolicyName[] = [
  "precise",
  "precise-speculative",
  "precise-credit",
  "cost",
  "kvpick",
  "kvpick-blind",
];

/**
 * Policy × workload: the GIE-weighted precise baseline, the ablations and kvpick's default, one block of rows
 * per workload, with kvpick's ratio to the baseline (TTFT: baseline / kvpick, > 1 = kvpick faster).
 */
export function versusTable(runs: readonly { title: string; rows: readonly PolicySummary[] }[]): string {
  const head =
    "| workload | policy | TTFT p50 (s) | TTFT p90 (s) | TTFT p99 (s) | output tok/s | prefix hit rate |\n" +
    "|---|---|---:|---:|---:|---:|---:|\n";
  const lines: string[] = [];
  const verdicts: string[] = [];
  for (const { title, rows } of runs) {
    const get = (p: PolicyName) => rows.find((r) => r.policy === p)?.summary.overall;
    for (const p of VERSUS) {
      const f = get(p);
      if (f === undefined) continue;
      lines.push(
        `| ${title} | ${POLICY_LABELS[p]} | ${fmtS(f.ttftP50)} | ${fmtS(f.ttftP90)} | ${fmtS(f.ttftP99)} | ` +
          `${fmtInt(f.outputTokensPerSecond)} | ${(f.hitRate * 100).toFixed(1)} % |`,
      );
    }
    const base = get("precise");
    const k = get("kvpick");
    if (base === undefined || k === undefined) continue;
    const r = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : "∞");
    lines.push(
      `| ${title} | **kvpick / baseline** | **${r(base.ttftP50, k.ttftP50)}×** | **${r(base.ttftP90, k.ttftP90)}×** | ` +
        `**${r(base.ttftP99, k.ttftP99)}×** | **${r(k.outputTokensPerSecond, base.outputTokensPerSecond)}×** | ` +
        `${((k.hitRate - base.hitRate) * 100).toFixed(1)} pt |`,
    );
    verdicts.push(
      `- ${title}: TTFT p50 / p90 / p99 ${r(base.ttftP50, k.ttftP50)}× / ${r(base.ttftP90, k.ttftP90)}× / ` +
        `${r(base.ttftP99, k.ttftP99)}× faster, throughput ${r(k.outputTokensPerSecond, base.outputTokensPerSecond)}×`,
    );
  }
  return `${head}${lines.join("\n")}\n\nkvpick default vs the GIE-weighted precise baseline:\n\n${verdicts.join("\n")}\n`;
}

export function stageTable(rows: readonly PolicySummary[]): string {
  const stages = rows[0]?.summary.stages ?? [];
  const head =
    `| policy | ${stages.map((s) => `${s.qps} QPS`).join(" | ")} |\n` +
    `|---|${stages.map(() => "---:").join("|")}|\n`;
  const line = (p: PolicySummary, f: (i: number) => string) =>
    `| ${POLICY_LABELS[p.policy]} | ${stages.map((_, i) => f(i)).join(" | ")} |`;
  return (
    "TTFT p90 (s) by the stage the request arrived in:\n\n" +
    head +
    rows.map((p) => line(p, (i) => fmtS(p.summary.stages[i]!.ttftP90))).join("\n") +
    "\n\nOutput tokens/s generated during each stage's window:\n\n" +
    head +
    rows.map((p) => line(p, (i) => fmtInt(p.summary.stages[i]!.outputTokensPerSecond))).join("\n") +
    "\n"
  );
}

const COLORS: Record<PolicyName, string> = {
  random: "#d62728",
  "round-robin": "#ff7f0e",
  load: "#8c564b",
  "approximate-w1": "#e377c2",
  approximate: "#9467bd",
  precise: "#1f77b4",
  "precise-speculative": "#17becf",
  "precise-credit": "#bcbd22",
  cost: "#7f7f7f",
  kvpick: "#000000",
  "kvpick-blind": "#aec7e8",
  ideal: "#2ca02c",
};

export interface ChartOptions {
  title: string;
  yLabel: string;
  logY: boolean;
  /** One value per stage per policy. */
  value: (s: Summary["stages"][number]) => number;
  /** A second, dashed line per policy (e.g. p50 under p90), and the legend's names of both lines. */
  dashed?: { value: (s: Summary["stages"][number]) => number; solidLabel: string; dashedLabel: string };
}

/** A line chart: x = stage QPS (categorical positions), one line per policy, legend on the right. */
export function stageChart(rows: readonly PolicySummary[], o: ChartOptions): string {
  const W = 760;
  const H = 420;
  const L = 70;
  const R = 250;
  const T = 40;
  const B = 50;
  const pw = W - L - R;
  const ph = H - T - B;
  const stages = rows[0]?.summary.stages ?? [];
  const vals = rows
    .flatMap((r) => [
      ...r.summary.stages.map(o.value),
      ...(o.dashed === undefined ? [] : r.summary.stages.map(o.dashed.value)),
    ])
    .filter((v) => Number.isFinite(v) && (!o.logY || v > 0));
  let lo = Math.min(...vals);
  let hi = Math.max(...vals);
  if (o.logY) {
    lo = 10 ** Math.floor(Math.log10(Math.max(lo, 1e-3)));
    hi = 10 ** Math.ceil(Math.log10(Math.max(hi, lo * 10)));
  } else {
    lo = 0;
    hi = hi > 0 ? niceCeil(hi) : 1;
  }
  const y = (v: number) =>
    T +
    ph -
    (o.logY ? (Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) : (v - lo) / (hi - lo)) *
      ph;
  const x = (i: number) => L + (stages.length <= 1 ? pw / 2 : (i / (stages.length - 1)) * pw);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L + pw / 2}" y="22" text-anchor="middle" font-size="15">${esc(o.title)}</text>`,
  );
  // Grid and y ticks.
  const ticks: number[] = [];
  if (o.logY) for (let v = lo; v <= hi * 1.0001; v *= 10) ticks.push(v);
  else for (let k = 0; k <= 5; k++) ticks.push(lo + ((hi - lo) * k) / 5);
  for (const v of ticks) {
    out.push(
      `<line x1="${L}" x2="${L + pw}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#ddd"/>`,
      `<text x="${L - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${o.logY ? fmtS(v) : fmtInt(v)}</text>`,
    );
  }
  stages.forEach((s, i) => {
    out.push(`<text x="${x(i).toFixed(1)}" y="${T + ph + 18}" text-anchor="middle">${s.qps}</text>`);
  });
  out.push(
    `<line x1="${L}" x2="${L}" y1="${T}" y2="${T + ph}" stroke="#333"/>`,
    `<line x1="${L}" x2="${L + pw}" y1="${T + ph}" y2="${T + ph}" stroke="#333"/>`,
    `<text x="${L + pw / 2}" y="${H - 12}" text-anchor="middle">offered load (QPS, stage)</text>`,
    `<text transform="translate(16 ${T + ph / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`,
  );
  const points = (r: PolicySummary, value: ChartOptions["value"]) =>
    r.summary.stages
      .map((s, i) => [x(i), value(s)] as const)
      .filter(([, v]) => Number.isFinite(v) && (!o.logY || v > 0))
      .map(([px, v]) => `${px.toFixed(1)},${y(v).toFixed(1)}`);
  rows.forEach((r, k) => {
    const pts = points(r, o.value);
    const c = COLORS[r.policy];
    out.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.join(" ")}"/>`);
    for (const p of pts) {
      const [px, py] = p.split(",");
      out.push(`<circle cx="${px}" cy="${py}" r="3" fill="${c}"/>`);
    }
    if (o.dashed !== undefined) {
      const dpts = points(r, o.dashed.value);
      out.push(
        `<polyline fill="none" stroke="${c}" stroke-width="2" stroke-dasharray="6 4" points="${dpts.join(" ")}"/>`,
      );
    }
    const ly = T + 10 + k * 20;
    out.push(
      `<line x1="${L + pw + 15}" x2="${L + pw + 40}" y1="${ly}" y2="${ly}" stroke="${c}" stroke-width="3"/>`,
      `<text x="${L + pw + 46}" y="${ly + 4}">${esc(POLICY_LABELS[r.policy])}</text>`,
    );
  });
  if (o.dashed !== undefined) {
    const ly = T + 10 + rows.length * 20 + 10;
    out.push(
      `<line x1="${L + pw + 15}" x2="${L + pw + 40}" y1="${ly}" y2="${ly}" stroke="#333" stroke-width="2"/>`,
      `<text x="${L + pw + 46}" y="${ly + 4}">${esc(o.dashed.solidLabel)}</text>`,
      `<line x1="${L + pw + 15}" x2="${L + pw + 40}" y1="${ly + 20}" y2="${ly + 20}" stroke="#333" stroke-width="2" stroke-dasharray="6 4"/>`,
      `<text x="${L + pw + 46}" y="${ly + 24}">${esc(o.dashed.dashedLabel)}</text>`,
    );
  }
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}

function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
