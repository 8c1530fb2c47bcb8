// `npm run bench:routing:live [-- --time-scale 5 --stage-seconds 40 --qps 3,6,10 --groups 40 --output-tokens 50 …]`
// (also `node dist/bench/routing/run.js --live …`). The live mode of the routing benchmark: a short, scaled-down
// reference workload replayed through a real `kvpick serve` process, real sockets and simulated pods at
// --time-scale k (live-run.ts), next to the virtual-time run of the SAME workload (virtual-run.ts), so a
// reader sees the real process routes like the virtual one. Also live with pods that publish no KV events
// (kvpick falls back to estimated prefix matching for every pod) and its virtual twin. Writes
// bench/results/routing-live.md.
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_ENGINE_CONFIG } from "../../src/sim/engine-config.js";
import { type LiveResult, runLive } from "./live-run.js";
import type { PolicyName } from "./policies.js";
import { summarize } from "./summary.js";
import { type RunResult, runVirtual } from "./virtual-run.js";
import { sharedPrefix } from "./workloads.js";

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      "time-scale": { type: "string", default: "5" },
      "stage-seconds": { type: "string", default: "40" },
      qps: { type: "string", default: "3,6,10" },
      groups: { type: "string", default: "40" },
      "users-per-group": { type: "string", default: "5" },
      "output-tokens": { type: "string", default: "50" },
      pods: { type: "string", default: "8" },
      seed: { type: "string", default: "20250924" },
      "max-in-flight": { type: "string", default: "256" },
      "event-delay-ms": { type: "string", default: "50" },
      runs: { type: "string", default: "precise,blind" },
      "scrape-ms": { type: "string" },
      out: { type: "string", default: "bench/results" },
      main: { type: "string", default: "dist/src/main.js" },
    },
  });
  const k = Number(values["time-scale"]);
  const stageSeconds = Number(values["stage-seconds"]);
  const qps = values.qps.split(",").map(Number);
  const seed = Number(values.seed);
  const pods = Number(values.pods);
  const maxInFlight = Number(values["max-in-flight"]);
  const groups = Number(values.groups);
  const users = Number(values["users-per-group"]);
  const outputTokens = Number(values["output-tokens"]);
  const model = "Qwen3-32B";
  const hashSeed = "42";
  const engine = DEFAULT_ENGINE_CONFIG;
  // kvpick's 50 ms scrape in simulated time = 50 / k wall ms (floor 10 ms: 8 pods × 100 scrapes/s is enough
  // CPU on a small machine).
  const scrapeIntervalMs = Number(values["scrape-ms"] ?? Math.max(10, Math.round(50 / k)));
  const workload = sharedPrefix(
    {
      seed,
      stages: qps.map((q) => ({ qps: q, seconds: stageSeconds })),
      groups,
      usersPerGroup: users,
      systemTokens: 6000,
      questionTokens: 1200,
      outputTokens,
      zipfAlpha: null,
    },
    "reference-live",
    "Reference, scaled down for the live mode",
    `${groups} groups × ${users} users, 6,000 system / 1,200 question / ${outputTokens} output tokens, Poisson ` +
      `${qps.join(" → ")} QPS (simulated), ${stageSeconds} simulated s per stage.`,
  );
  const command = `node dist/bench/routing/live.js ${argv.join(" ")}`.trim();
  console.log(`routing benchmark, live mode: ${command}`);
  console.log(
    `${workload.sessions.length} requests; ${pods} pods; time scale ${k}× (load window ` +
      `${((qps.length * stageSeconds) / k).toFixed(0)} s wall); kvpick scrape ${scrapeIntervalMs} ms wall`,
  );

  const wall0 = performance.now();
  const rows: Array<{ label: string; result: RunResult | LiveResult }> = [];
  const runs = values.runs.split(",");
  for (const run of runs) {
    if (run !== "precise" && run !== "blind") throw new Error(`unknown run ${run} (precise | blind)`);
    // The live process runs kvpick's default profile; blind, it falls back to estimated prefix matching.
    const policy: PolicyName = run === "precise" ? "kvpick" : "kvpick-blind";
    const virtual = runVirtual({
      workload,
      policy,
      seed,
      pods,
      engine,
      eventDelaySeconds: Number(values["event-delay-ms"]) / 1000,
      scrapeIntervalSeconds: 0.05,
      hashSeed,
      model,
      maxInFlight,
    });
    rows.push({
      label: `virtual, ${policy === "kvpick" ? "kvpick default" : "kvpick default, no KV events"}`,
      result: virtual,
    });
    print(rows[rows.length - 1]!);
    const live = await runLive({
      workload,
      mode: run,
      pods,
      engine,
      timeScale: k,
      hashSeed,
      model,
      maxInFlight,
      scrapeIntervalMs,
      requestTimeoutSeconds: 60,
      mainJs: values.main,
    });
    rows.push({
      label: `LIVE, kvpick ${run === "precise" ? "default (pods publish KV events)" : "blind (no KV events → estimated fallback)"}`,
      result: live,
    });
    print(rows[rows.length - 1]!);
  }
  const wall = (performance.now() - wall0) / 1000;

  const table = [
    "| run | requests (failed) | TTFT p50 (sim s) | TTFT p90 (sim s) | TTFT p99 (sim s) | prefix hit rate | picks per pod | wall (s) |",
    "|---|---:|---:|---:|---:|---:|---|---:|",
    ...rows.map(({ label, result }) => {
      const f = summarize(result, workload).overall;
      const failed = "failed" in result ? result.failed : 0;
      return (
        `| ${label} | ${f.requests} (${failed}) | ${f.ttftP50.toFixed(3)} | ${f.ttftP90.toFixed(3)} | ` +
        `${f.ttftP99.toFixed(3)} | ${(f.hitRate * 100).toFixed(1)} % | ${picks(result, pods).join(" / ")} | ` +
        `${result.wallSeconds.toFixed(1)} |`
      );
    }),
  ].join("\n");
  console.log(`\n${table}\n\nwall ${wall.toFixed(0)} s`);

  const md =
    "# Routing benchmark, live mode\n\n" +
    `Generated by \`npm run bench:routing:live${argv.length > 0 ? ` -- ${argv.join(" ")}` : ""}\` (= \`${command}\`), ` +
    `seed ${seed}, wall time ${wall.toFixed(0)} s.\n\n` +
    `Workload: ${workload.description} ${workload.sessions.length} requests. The same request stream runs in ` +
    "virtual time (virtual-run.ts: production scheduler, KvEventIngest and BlockIndex in one process on a " +
    `discrete-event clock, events delivered ${values["event-delay-ms"]} ms after their engine step) and LIVE ` +
    `(live-run.ts): a real \`kvpick serve\` child process (plaintext ext_proc, hash seed ${hashSeed}, static ` +
    `--endpoints, KV-event SUB bound on 127.0.0.1, scrape every ${scrapeIntervalMs} ms wall), a \`kvpick sim\` ` +
    `child process with ${pods} pods on 127.0.0.${101}–${100 + pods} at --time-scale ${k} (calibrated Qwen3-32B ` +
    "engines, publishing ZeroMQ KV events to kvpick — or none in the blind run), the Envoy stand-in " +
    "(src/demo/envoy-front.ts, ext_proc FULL_DUPLEX_STREAMED) and a client sending each arrival at its time / k " +
    "as a streaming /v1/completions request with the prompt as token ids (stream_options.include_usage). Live TTFT " +
    "= wall time from send to the first content chunk × k (so it includes the front, kvpick's ext_proc round trip " +
    "and timer lateness, all magnified k×); hit rate = Σ usage cached_tokens / Σ prompt_tokens; picks per pod from " +
    "the front's x-kvpick-destination header. Blind = the pods publish no KV events, so the index never hears " +
    "of any pod and kvpick's default profile matches every pod by estimated (prompt-text) prefix matching of what " +
    "it routed there (virtual twin: the same profile over an index that receives nothing; the live prompt text is " +
    "the JSON of the token ids, the virtual one 4 characters per token, so block boundaries differ).\n\n" +
    `${table}\n\n` +
    "Reading: the hit rates should match closely, since with a cache-aware pick each prompt's prefix is found " +
    "wherever it was first computed whatever pod the tie-break chose (the picks per pod differ from run to run), " +
    "and a blind pick hits where kvpick last sent the same text. Live TTFTs are higher by a roughly constant few wall " +
    `milliseconds per request (front + ext_proc + HTTP to the pod, on a shared ${availableParallelism()}-CPU machine) ` +
    `multiplied by k = ${k}; the ordering precise < blind holds in both.\n`;
  mkdirSync(values.out, { recursive: true });
  const file = join(values.out, "routing-live.md");
  writeFileSync(file, md);
  console.log(`wrote ${file}`);
  return rows.some(({ result }) => "failed" in result && result.failed > 0) ? 1 : 0;
}

function picks(result: RunResult, pods: number): number[] {
  const n = new Array<number>(pods).fill(0);
  for (const r of result.records) if (r.pod >= 0 && r.pod < pods) n[r.pod]!++;
  return n;
}

function print({ label, result }: { label: string; result: RunResult }): void {
  const f = summarize(result, { stages: [] } as never).overall;
  console.log(
    `${label.padEnd(56)} n ${f.requests}, TTFT p50 ${f.ttftP50.toFixed(3)} p90 ${f.ttftP90.toFixed(3)} s, ` +
      `hit ${(f.hitRate * 100).toFixed(1)} %, wall ${result.wallSeconds.toFixed(1)} s` +
      ("failed" in result ? `, failed ${(result as LiveResult).failed}` : ""),
  );
}

// Direct entry: `node dist/bench/routing/live.js …` (run.ts --live imports main instead).
if (process.argv[1]?.endsWith("/live.js")) {
  process.exitCode = await main(process.argv.slice(2));
}
