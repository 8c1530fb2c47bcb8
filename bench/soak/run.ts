// Soak: the reference workload (inference-perf shared_prefix: 150 customers × 5 users, 6,000-token system
// prompts, 1,200-token questions) at a steady Poisson rate for a long time against a real `kvpick serve`
// process, 8 simulated vLLM pods (in this process, real sockets, real KV events) and the Envoy stand-in,
// with one pod restarted every `--restart-every` seconds (engine restart: empty cache, publisher seq back
// to 0). Every minute it records kvpick's resident memory and heap, its index size, the exact p50/p99 of
// its scheduling latency (from the "Request handled" lines), the hit rate the pods report, and failures.
// Flat memory and flat p99 over the run are the result; the table goes to stdout and bench/results/soak.md.
//
//   npm run bench:soak -- [--minutes 30] [--qps 6] [--time-scale 5] [--restart-every 120] [--pods 8]
import { readFileSync, writeFileSync } from "node:fs";
import { Agent, request as httpRequest } from "node:http";
import { createInterface } from "node:readline";
import { parseConfig } from "../../src/config/load.js";
import { EnvoyFront } from "../../src/demo/envoy-front.js";
import { createLogger } from "../../src/observability/logger.js";
import { seededRng } from "../../src/sim/random.js";
import { TokenizationService } from "../../src/tokenization/tokenization-service.js";
import { startPoolPods } from "../../test/support/fault-stack.js";
import { freePort } from "../../test/support/free-port.js";
import { repoRoot } from "../../test/support/golden.js";
import { spawnServe } from "../../test/support/serve-child.js";
import { randomTokens } from "../routing/workloads.js";
import { startResult } from "../support/results.js";

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
};
const MINUTES = arg("minutes", 30);
const QPS = arg("qps", 6);
const TIME_SCALE = arg("time-scale", 5);
const RESTART_EVERY = arg("restart-every", 120);
const PODS = arg("pods", 8);
const GROUPS = 150;
const USERS = 5;
const OUTPUT_TOKENS = 64;

interface Minute {
  minute: number;
  requests: number;
  failed: number;
  prompt: number;
  cached: number;
  latenciesUs: number[];
  rssMb: number;
  heapMb: number;
  entries: number;
  restarts: number;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function sample(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text);
  return m === null ? Number.NaN : Number(m[1]);
}

async function main() {
  const logger = createLogger({ level: "warn" });
  const rng = seededRng(20261130);
  const systems = Array.from({ length: GROUPS }, () => Array.from(randomTokens(rng, 6000)));
  const questions = Array.from({ length: GROUPS * USERS }, () => Array.from(randomTokens(rng, 1200)));

  const tokenizer = new TokenizationService({ config: parseConfig({}).tokenizer, logger });
  const kvPort = await freePort();
  const { cluster, replayPort } = await startPoolPods({
    pods: PODS,
    timeScale: TIME_SCALE,
    kvEndpoint: `tcp://127.0.0.1:${kvPort}`,
    replay: true,
    tokenizer,
    logger,
  });
  const pods = cluster.pods;
  const serve = await spawnServe(
    [
      `--endpoints=${pods.map((p) => p.address).join(",")}`,
      `--kv-events-endpoint=tcp://127.0.0.1:${kvPort}`,
      `--kv-events-replay-port=${replayPort}`,
      "--log-level=info",
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let current: Minute | null = null;
  const lines = createInterface({ input: serve.proc.stdout! });
  lines.on("line", (line) => {
    if (!line.includes('"Request handled"') || current === null) return;
    const us = /"schedulingLatencyUs":(\d+)/.exec(line);
    if (us !== null) current.latenciesUs.push(Number(us[1]));
  });
  const metricsUrl = `http://127.0.0.1:${serve.metricsPort}`;
  for (let i = 0; ; i++) {
    if ((await fetch(`${metricsUrl}/readyz`).catch(() => null))?.status === 200) break;
    if (i > 600) throw new Error("kvpick not ready");
    await new Promise((r) => setTimeout(r, 50));
  }
  const front = new EnvoyFront({ extProcAddress: `127.0.0.1:${serve.grpcPort}`, port: 0, logger });
  const frontPort = await front.start();
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });

  const minutes: Minute[] = [];
  const newMinute = (minute: number): Minute => ({
    minute,
    requests: 0,
    failed: 0,
    prompt: 0,
    cached: 0,
    latenciesUs: [],
    rssMb: 0,
    heapMb: 0,
    entries: 0,
    restarts: 0,
  });
  current = newMinute(1);
  let inflight = 0;
  const send = (group: number, user: number) => {
    const m = current!;
    inflight++;
    const payload = JSON.stringify({
      model: "Qwen3-32B",
      prompt: [...systems[group]!, ...questions[group * USERS + user]!],
      max_tokens: OUTPUT_TOKENS,
    });
    const req = httpRequest(
      { host: "127.0.0.1", port: frontPort, method: "POST", path: "/v1/completions", agent },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (s: string) => (body += s));
        res.on("end", () => {
          inflight--;
          m.requests++;
          if (res.statusCode !== 200) return void m.failed++;
          const u = (
            JSON.parse(body) as {
              usage: { prompt_tokens: number; prompt_tokens_details?: { cached_tokens?: number } };
            }
          ).usage;
          m.prompt += u.prompt_tokens;
          m.cached += u.prompt_tokens_details?.cached_tokens ?? 0;
        });
      },
    );
    req.setTimeout(120_000, () => req.destroy(new Error("timeout")));
    req.on("error", () => {
      inflight--;
      m.requests++;
      m.failed++;
    });
    req.end(payload);
  };

  /** Reads kvpick's memory and index size, prints the minute and starts the next one. */
  const closeMinute = async () => {
    const m = current!;
    const text = await (await fetch(`${metricsUrl}/metrics`)).text();
    const status = readFileSync(`/proc/${serve.proc.pid}/status`, "utf8");
    m.rssMb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]) / 1024;
    m.heapMb = sample(text, "nodejs_heap_size_used_bytes") / 2 ** 20;
    m.entries = sample(text, "epp_kv_index_entries");
    minutes.push(m);
    const lat = [...m.latenciesUs].sort((a, b) => a - b);
    console.log(
      `min ${m.minute}: ${m.requests} req (${m.failed} failed), hit ${((100 * m.cached) / Math.max(1, m.prompt)).toFixed(1)} %, ` +
        `sched p50 ${quantile(lat, 0.5)} µs p99 ${quantile(lat, 0.99)} µs, rss ${m.rssMb.toFixed(0)} MB, ` +
        `heap ${m.heapMb.toFixed(0)} MB, entries ${m.entries}, in flight ${inflight}`,
    );
    current = newMinute(m.minute + 1);
  };

  const started = performance.now();
  const end = started + MINUTES * 60_000;
  let nextRestart = started + RESTART_EVERY * 1000;
  let restartPod = 0;
  let nextArrival = started;
  let nextMinute = started + 60_000;
  console.log(
    `soak: ${MINUTES} min, ${QPS} req/s wall (× time scale ${TIME_SCALE} = ${QPS * TIME_SCALE} req/s simulated), ` +
      `${PODS} pods, one restarted every ${RESTART_EVERY} s`,
  );
  while (performance.now() < end) {
    const now = performance.now();
    while (nextArrival <= now) {
      send(Math.floor(rng() * GROUPS), Math.floor(rng() * USERS));
      nextArrival += (-Math.log(1 - rng()) / QPS) * 1000;
    }
    if (now >= nextRestart) {
      await pods[restartPod % PODS]!.restart();
      current.restarts++;
      restartPod++;
      nextRestart += RESTART_EVERY * 1000;
    }
    if (now >= nextMinute) {
      await closeMinute();
      nextMinute += 60_000;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  // Let the last requests finish (bounded), then close the last minute.
  for (let i = 0; i < 600 && inflight > 0; i++) await new Promise((r) => setTimeout(r, 100));
  if (current.requests > 0) await closeMinute();
  agent.destroy();
  await front.close();
  await serve.stop();
  await cluster.close();
  await tokenizer.stop();

  const rows = minutes.map((m) => {
    const lat = [...m.latenciesUs].sort((a, b) => a - b);
    return `| ${m.minute} | ${m.requests} | ${m.failed} | ${((100 * m.cached) / Math.max(1, m.prompt)).toFixed(1)} % | ${quantile(lat, 0.5)} | ${quantile(lat, 0.99)} | ${m.rssMb.toFixed(0)} | ${m.heapMb.toFixed(0)} | ${m.entries} | ${m.restarts} |`;
  });
  // Flatness: least-squares slope of RSS over the second half, and p99 of the first vs last five minutes.
  const half = minutes.slice(Math.floor(minutes.length / 2));
  const slope = (() => {
    const n = half.length;
    if (n < 2) return 0;
    const mx = half.reduce((s, m) => s + m.minute, 0) / n;
    const my = half.reduce((s, m) => s + m.rssMb, 0) / n;
    const num = half.reduce((s, m) => s + (m.minute - mx) * (m.rssMb - my), 0);
    const den = half.reduce((s, m) => s + (m.minute - mx) ** 2, 0);
    return num / den;
  })();
  const p99Of = (ms: Minute[]) =>
    quantile(
      ms.flatMap((m) => m.latenciesUs).sort((a, b) => a - b),
      0.99,
    );
  const first = p99Of(minutes.slice(0, 5));
  const last = p99Of(minutes.slice(-5));
  const summary =
    `RSS slope over the second half: ${slope.toFixed(2)} MB/min; scheduling p99 first 5 min ${first} µs, ` +
    `last 5 min ${last} µs (ratio ${(last / first).toFixed(2)}); failed ${minutes.reduce((s, m) => s + m.failed, 0)} of ` +
    `${minutes.reduce((s, m) => s + m.requests, 0)}.`;
  console.log(summary);
  const md = [
    "# Soak — `npm run bench:soak`",
    "",
    `\`npm run bench:soak -- --minutes ${MINUTES} --qps ${QPS} --time-scale ${TIME_SCALE} --restart-every ${RESTART_EVERY} --pods ${PODS}\`, ${new Date().toISOString().slice(0, 10)}.`,
    "",
    summary,
    "",
    "| minute | requests | failed | hit rate | sched p50 (µs) | sched p99 (µs) | RSS (MB) | heap (MB) | index entries | pod restarts |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...rows,
    "",
  ].join("\n");
  writeFileSync(`${repoRoot}/bench/results/soak.md`, md);
  result.tables.push({
    caption: `A real \`kvpick serve\` child (default profile, bind mode, replay on), ${PODS} simulated vLLM pods with replay sockets, one restarted every ${RESTART_EVERY} s, the Envoy stand-in, the reference workload as token-id completions at ${QPS} req/s wall (time scale ${TIME_SCALE}). Per minute; full table: \`bench/results/soak.md\`.`,
    columns: [
      "minute",
      "requests",
      "failed",
      "hit rate",
      "sched p50 (µs)",
      "sched p99 (µs)",
      "RSS (MB)",
      "heap (MB)",
      "index entries",
      "pod restarts",
    ],
    rows: rows.map((r) => r.slice(2, -2).split(" | ")),
  });
  result.notes.push(
    summary,
    "Target (issue 8): flat memory and flat scheduling p99 over the run. Shared 2-core machine (kvpick, the pods, the front and the client share it): the load average above is recorded.",
  );
  console.log(`wrote ${result.write()}`);
}

const result = startResult(
  "soak",
  "Soak",
  `node --expose-gc dist/bench/soak/run.js ${process.argv.slice(2).join(" ")}`.trim(),
);
await main();
