// Benchmark results as files: every benchmark that reports figures writes bench/results/<name>.json with the
// date, the machine, the load average before and after, and the command, and `results-tables.ts` renders the
// tables of bench/README.md from those files, so a figure in the README is always one a re-run produced.
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, hostname, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { repoRoot } from "../../test/support/golden.js";

export interface ResultTable {
  caption?: string;
  columns: string[];
  rows: (string | number)[][];
}

export interface BenchResult {
  name: string;
  title: string;
  date: string;
  machine: { cpus: number; cpuModel: string; memoryGiB: number; node: string; host: string };
  /** 1-minute load average when the run started and when it ended. */
  loadAverage: { start: number; end: number };
  command: string;
  tables: ResultTable[];
  notes: string[];
}

export const RESULTS_DIR = join(repoRoot, "bench", "results");

/** Starts a result: call at the beginning of the run (it records the starting load average). */
export function startResult(name: string, title: string, command: string) {
  const start = loadavg()[0]!;
  const date = new Date().toISOString();
  const tables: ResultTable[] = [];
  const notes: string[] = [];
  return {
    tables,
    notes,
    /** Writes bench/results/<name>.json and returns its path. */
    write(): string {
      const cpu = cpus();
      const result: BenchResult = {
        name,
        title,
        date,
        machine: {
          cpus: cpu.length,
          cpuModel: cpu[0]?.model ?? "unknown",
          memoryGiB: Math.round(totalmem() / 2 ** 30),
          node: process.version,
          host: hostname(),
        },
        loadAverage: { start: round2(start), end: round2(loadavg()[0]!) },
        command,
        tables,
        notes,
      };
      mkdirSync(RESULTS_DIR, { recursive: true });
      const path = join(RESULTS_DIR, `${name}.json`);
      writeFileSync(path, `${JSON.stringify(result, null, 2)}\n`);
      return path;
    },
  };
}

const round2 = (x: number) => Math.round(x * 100) / 100;
