// `npm run bench [-- <name>…] [--full]`: runs every benchmark (or the named ones) one after the other, each in
// a fresh `node --expose-gc` child so one's garbage and JIT state cannot colour the next, then renders every
// bench/results/<name>.json into bench/README.md. A failing benchmark does not stop the run: the rest still
// run, and the run exits non-zero at the end with the failures listed.
//
// Names are the `bench/<name>.bench.ts` files plus `routing` (the virtual-time routing bench, `--quick`
// unless `--full`: the full ladders take ~7 min on a quiet machine). The soak (30 min) stays its own
// command, `npm run bench:soak`.
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { renderReadme } from "./results-tables.js";

const here = dirname(fileURLToPath(import.meta.url));
/** One benchmark's longest run before it is stopped and counted as failed. */
const TIMEOUT_MS = 30 * 60_000;

export interface BenchTarget {
  name: string;
  script: string;
  args: string[];
}

/** Every benchmark the runner knows, in run order (the routing bench last: it is the longest). */
export function benchTargets(dir: string, full: boolean): BenchTarget[] {
  const benches = readdirSync(dir)
    .filter((f) => f.endsWith(".bench.js"))
    .sort()
    .map((f) => ({ name: f.slice(0, -".bench.js".length), script: join(dir, f), args: [] as string[] }));
  return [
    ...benches,
    { name: "routing", script: join(dir, "routing", "run.js"), args: full ? [] : ["--quick"] },
  ];
}

/** The targets named on the command line (all when none); throws on a name it does not know. */
export function selectTargets(all: BenchTarget[], names: string[]): BenchTarget[] {
  const unknown = names.filter((n) => !all.some((t) => t.name === n));
  if (unknown.length > 0)
    throw new Error(
      `unknown benchmark(s): ${unknown.join(", ")}; known: ${all.map((t) => t.name).join(", ")}`,
    );
  return names.length === 0 ? all : all.filter((t) => names.includes(t.name));
}

export interface BenchOutcome {
  name: string;
  ok: boolean;
  seconds: number;
  /** Exit code, or the signal / timeout that ended it. */
  exit: string;
}

function runOne(t: BenchTarget): Promise<BenchOutcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--expose-gc", t.script, ...t.args], { stdio: "inherit" });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, TIMEOUT_MS);
    const done = (exit: string, ok: boolean) => {
      clearTimeout(timer);
      resolve({ name: t.name, ok, seconds: (performance.now() - started) / 1000, exit });
    };
    child.on("error", (err) => done(err.message, false));
    child.on("exit", (code, signal) => {
      if (timedOut) done(`timed out after ${TIMEOUT_MS / 60_000} min`, false);
      else if (signal !== null) done(`signal ${signal}`, false);
      else done(`exit ${code}`, code === 0);
    });
  });
}

/** Runs the targets one after the other; a failure never stops the ones after it. */
export async function runAll(targets: readonly BenchTarget[]): Promise<BenchOutcome[]> {
  const outcomes: BenchOutcome[] = [];
  for (const t of targets) {
    console.log(`\n=== bench ${t.name}: node --expose-gc ${t.script} ${t.args.join(" ")}`.trimEnd());
    outcomes.push(await runOne(t));
  }
  return outcomes;
}

export function summaryLines(outcomes: readonly BenchOutcome[]): string[] {
  const lines = outcomes.map(
    (o) => `${o.ok ? "ok  " : "FAIL"} ${o.name.padEnd(18)} ${o.seconds.toFixed(0).padStart(5)} s  ${o.exit}`,
  );
  const failed = outcomes.filter((o) => !o.ok);
  const total = outcomes.reduce((s, o) => s + o.seconds, 0);
  lines.push(
    failed.length === 0
      ? `all ${outcomes.length} benchmark(s) passed in ${total.toFixed(0)} s`
      : `${failed.length} of ${outcomes.length} benchmark(s) failed: ${failed.map((o) => o.name).join(", ")} (${total.toFixed(0)} s in all)`,
  );
  return lines;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { full: { type: "boolean", default: false }, list: { type: "boolean", default: false } },
  });
  const all = benchTargets(here, values.full);
  if (values.list) {
    for (const t of all) console.log(t.name);
    return 0;
  }
  let targets: BenchTarget[];
  try {
    targets = selectTargets(all, positionals);
  } catch (err) {
    console.error((err as Error).message);
    return 2;
  }
  const outcomes = await runAll(targets);
  console.log(`\n${renderReadme()}`);
  console.log(`\n${summaryLines(outcomes).join("\n")}`);
  return outcomes.every((o) => o.ok) ? 0 : 1;
}

if (process.argv[1]?.endsWith("run-benchmarks.js")) process.exitCode = await main();
