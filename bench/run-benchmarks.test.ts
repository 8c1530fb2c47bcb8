import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { benchTargets, runAll, selectTargets, summaryLines } from "./run-benchmarks.js";

function benchDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "kvpick-bench-"));
  mkdirSync(join(dir, "routing"));
  writeFileSync(join(dir, "a-fails.bench.js"), "console.log('a'); process.exit(3);\n");
  writeFileSync(join(dir, "b-works.bench.js"), "if (typeof gc !== 'function') process.exit(4);\n");
  writeFileSync(join(dir, "routing", "run.js"), "process.exit(process.argv.includes('--quick') ? 0 : 5);\n");
  writeFileSync(join(dir, "helper.js"), "process.exit(6);\n");
  return dir;
}

describe("run-benchmarks", () => {
  it("knows every *.bench.js plus the routing bench, quick unless --full", () => {
    const dir = benchDir();
    expect(benchTargets(dir, false).map((t) => [t.name, t.args])).toEqual([
      ["a-fails", []],
      ["b-works", []],
      ["routing", ["--quick"]],
    ]);
    expect(benchTargets(dir, true).at(-1)?.args).toEqual([]);
  });

  it("runs a subset by name and refuses names it does not know", () => {
    const all = benchTargets(benchDir(), false);
    expect(selectTargets(all, ["routing", "b-works"]).map((t) => t.name)).toEqual(["b-works", "routing"]);
    expect(selectTargets(all, []).length).toBe(3);
    expect(() => selectTargets(all, ["kv-idnex"])).toThrow(
      /unknown benchmark\(s\): kv-idnex; known: a-fails/,
    );
  });

  it("continues past a failing benchmark and lists the failures at the end", async () => {
    const outcomes = await runAll(benchTargets(benchDir(), false));
    expect(outcomes.map((o) => [o.name, o.ok, o.exit])).toEqual([
      ["a-fails", false, "exit 3"],
      ["b-works", true, "exit 0"], // run with --expose-gc
      ["routing", true, "exit 0"],
    ]);
    expect(summaryLines(outcomes).at(-1)).toMatch(/^1 of 3 benchmark\(s\) failed: a-fails \(/);
  });
});
