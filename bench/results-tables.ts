// Renders bench/results/*.json into bench/README.md: each result replaces the text between
// `<!-- results:<name> -->` and `<!-- /results:<name> -->` (appended at the end when the markers are absent),
// with its date, machine, load average and command above the tables. Run by `npm run bench` after the
// benchmarks (bench/run-benchmarks.ts), or alone: node dist/bench/results-tables.js
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../test/support/golden.js";
import { type BenchResult, RESULTS_DIR } from "./support/results.js";

export function renderResult(r: BenchResult): string {
  const m = r.machine;
  const lines = [
    `_Measured ${r.date.slice(0, 16).replace("T", " ")} UTC on ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, ` +
      `Node ${m.node}; load average ${r.loadAverage.start} → ${r.loadAverage.end}; command: \`${r.command}\`._`,
    "",
  ];
  for (const t of r.tables) {
    if (t.caption) lines.push(t.caption, "");
    lines.push(`| ${t.columns.join(" | ")} |`);
    lines.push(`|${t.columns.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`);
    for (const row of t.rows) lines.push(`| ${row.join(" | ")} |`);
    lines.push("");
  }
  for (const n of r.notes) lines.push(`- ${n}`);
  return lines.join("\n").trimEnd();
}

export function updateReadme(readme: string, results: BenchResult[]): string {
  let out = readme;
  for (const r of results) {
    const open = `<!-- results:${r.name} -->`;
    const close = `<!-- /results:${r.name} -->`;
    const block = `${open}\n${renderResult(r)}\n${close}`;
    const a = out.indexOf(open);
    const b = out.indexOf(close);
    if (a !== -1 && b > a) out = out.slice(0, a) + block + out.slice(b + close.length);
    else out = `${out.trimEnd()}\n\n## ${r.title} — \`${r.name}\`\n\n${block}\n`;
  }
  return out;
}

/** Renders every bench/results/*.json into bench/README.md; returns a one-line account. */
export function renderReadme(): string {
  const results = readdirSync(RESULTS_DIR)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(RESULTS_DIR, f), "utf8")) as BenchResult);
  const path = join(repoRoot, "bench", "README.md");
  writeFileSync(path, updateReadme(readFileSync(path, "utf8"), results));
  return `bench/README.md: ${results.length} result file(s) rendered`;
}

if (process.argv[1]?.endsWith("results-tables.js")) console.log(renderReadme());
