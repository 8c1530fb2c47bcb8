import { describe, expect, it } from "vitest";
import { renderResult, updateReadme } from "./results-tables.js";
import type { BenchResult } from "./support/results.js";

const result = (rps: string): BenchResult => ({
  name: "demo",
  title: "Demo",
  date: "2026-12-02T03:00:00.000Z",
  machine: { cpus: 2, cpuModel: "Test CPU", memoryGiB: 24, node: "v20.20.2", host: "h" },
  loadAverage: { start: 1.5, end: 2 },
  command: "node dist/bench/demo.bench.js",
  tables: [{ columns: ["server", "req/s"], rows: [["noop", rps]] }],
  notes: ["a note"],
});

describe("results-tables", () => {
  it("renders date, machine, load and command above the tables", () => {
    const text = renderResult(result("100"));
    expect(text).toContain(
      "2026-12-02 03:00 UTC on 2 × Test CPU, 24 GiB, Node v20.20.2; load average 1.5 → 2",
    );
    expect(text).toContain("`node dist/bench/demo.bench.js`");
    expect(text).toContain("| noop | 100 |");
    expect(text).toContain("- a note");
  });

  it("replaces the block between its markers, so a stale figure cannot survive a re-run", () => {
    const readme = "# B\n\nintro\n\n<!-- results:demo -->\n| noop | 1 |\n<!-- /results:demo -->\n\nafter\n";
    const once = updateReadme(readme, [result("100")]);
    expect(once).not.toContain("| noop | 1 |");
    expect(once).toContain("| noop | 100 |");
    expect(once.endsWith("after\n")).toBe(true);
    const twice = updateReadme(once, [result("200")]);
    expect(twice).not.toContain("| noop | 100 |");
    expect(twice.match(/results:demo -->/g)?.length).toBe(2);
  });

  it("appends a section for a result without markers", () => {
    const out = updateReadme("# B\n", [result("7")]);
    expect(out).toContain("## Demo — `demo`");
    expect(out).toContain("| noop | 7 |");
  });
});
