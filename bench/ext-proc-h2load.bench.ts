// ext_proc throughput with a load generator that costs (almost) nothing: nghttp2's h2load (C, Debian package
// nghttp2-client) replays one pre-encoded gRPC Process call — request headers, then the whole ~8k-token body
// with end_of_stream, then half-close — against a real `kvpick serve` child with 8 fake pods. kvpick answers
// the header response and the body echo, then ends the call when the client half-closes. Every request is
// the same prompt, so tokenization is fully cached: this measures kvpick's ceiling, not a realistic mix
// (see ext-proc-load.bench.ts for distinct user turns). The same replay against the noop EPP
// (support/noop-epp.ts: a grpc-js server that only answers as an EPP must) is the transport ceiling, and
// kvpick's figures are reported as a fraction of it (issue 16: ≥ 0.5 of its req/s, ≤ 2.5× its CPU per
// request). Writes bench/results/ext-proc-h2load.json.
// Run: apt-get install nghttp2-client; npx tsc -p tsconfig.json && node dist/bench/ext-proc-h2load.bench.js [--profile]
//   [--only default,fallback-off,worker,pinned,pinned-worker] [--base <checkout>] [--rounds N]
// --profile: kvpick's CPU profile in /tmp/kvpick-prof. --only: those kvpick rows (the ceiling always runs).
// --base: the same rows also from another built checkout (e.g. a worktree of main), alternated with this one
// in the same run, so a before/after comparison shares the machine's load. --rounds: the whole sequence N times.
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as protoLoader from "@grpc/proto-loader";
import { LOADER_OPTIONS, PROTO_DIR } from "../src/ext-proc/protos.js";
import { FakeVllmPod } from "../test/support/fake-vllm-pod.js";
import { freePort } from "../test/support/free-port.js";
import { repoRoot } from "../test/support/golden.js";
import { requestHeadersMessage, spawnServe } from "../test/support/serve-child.js";
import { startResult } from "./support/results.js";

try {
  execFileSync("h2load", ["--version"], { stdio: "ignore" });
} catch {
  console.log("ext-proc-h2load: h2load not found (apt-get install nghttp2-client); skipped");
  process.exit(0);
}

function grpcFrame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1); // byte 0 = 0: not compressed
  return Buffer.concat([head, message]);
}

function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

const words = ["policy", "travel", "hotel", "budget", "approval", "economy", "manager", "receipt", "refund"];
const system = [
  "You are assistant #0.",
  ...Array.from(
    { length: 500 },
    (_, s) =>
      `Rule ${s} for customer 0: ${words[(s * 7) % 9]} ${s % 13} applies to every trip booked through the travel desk.`,
  ),
].join(" ");
const body = Buffer.from(
  JSON.stringify({
    model: "Qwen3-32B",
    messages: [
      { role: "system", content: system },
      { role: "user", content: "May I book a 4 star hotel for 3 nights?" },
    ],
  }),
);

const def = protoLoader.loadSync("envoy/service/ext_proc/v3/external_processor.proto", {
  ...LOADER_OPTIONS,
  includeDirs: [PROTO_DIR],
});
const process_ = (def["envoy.service.ext_proc.v3.ExternalProcessor"] as protoLoader.ServiceDefinition)
  .Process!;
const payload = Buffer.concat([
  grpcFrame(process_.requestSerialize(requestHeadersMessage("/v1/chat/completions"))),
  grpcFrame(process_.requestSerialize({ request_body: { body, end_of_stream: true } })),
]);
const dataFile = join(tmpdir(), `kvpick-h2load-${process.pid}.bin`);
writeFileSync(dataFile, payload);

const N = Number(process.env.H2LOAD_REQUESTS ?? 10_000);
const result = startResult(
  "ext-proc-h2load",
  "ext_proc ceiling under h2load",
  "node dist/bench/ext-proc-h2load.bench.js",
);
const pods = await Promise.all(
  Array.from({ length: 8 }, (_, i) => new FakeVllmPod(`127.0.0.${71 + i}`).start()),
);

interface Target {
  name: string;
  pid: number;
  port: number;
  /** CPUs the server (every thread) is pinned to, and h2load's; undefined = both unpinned. */
  cpus?: { server: string; load: string };
  stop(): Promise<void>;
}

async function noopTarget(): Promise<Target> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [`${repoRoot}/dist/bench/support/noop-epp.js`, String(port), pods[0]!.address],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const [line] = (await once(child.stdout!, "data")) as [Buffer];
  if (!line.toString().startsWith("listening")) throw new Error(`noop EPP: ${line}`);
  return {
    name: "grpc-js EPP that does nothing (the ceiling)",
    pid: child.pid!,
    port,
    async stop() {
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      await exited;
    },
  };
}

function argOf(flag: string): string | undefined {
  const at = process.argv.indexOf(flag);
  return at < 0 ? undefined : process.argv[at + 1];
}
const BASE = argOf("--base");
const ONLY = argOf("--only")?.split(",");
const ROUNDS = Number(argOf("--rounds") ?? 1);

async function kvpickTarget(
  name: string,
  extra: string[],
  pin?: Target["cpus"],
  root?: string,
): Promise<Target> {
  const serve = await spawnServe(
    [`--endpoints=${pods.map((p) => p.address).join(",")}`, "--log-level=warn", ...extra],
    {
      nodeArgs: process.argv.includes("--profile") ? ["--cpu-prof", "--cpu-prof-dir=/tmp/kvpick-prof"] : [],
      ...(root === undefined ? {} : { root }),
    },
  );
  // -a: every thread that exists (the tokenizer workers start with the server); later ones inherit it.
  if (pin !== undefined) execFileSync("taskset", ["-a", "-cp", pin.server, String(serve.proc.pid)]);
  return {
    name,
    pid: serve.proc.pid!,
    port: serve.grpcPort,
    stop: () => serve.stop(),
    ...(pin === undefined ? {} : { cpus: pin }),
  };
}

const FALLBACK_OFF =
  '--config-text={"scheduling":{"scorers":[{"type":"ttft-cost-scorer","weight":1,"parameters":{"estimatedFallback":false}}]}}';

// Every chat rendered, tokenized and hashed on the tokenizer worker: the main thread keeps gRPC and scheduling.
const BOTH_CORES = '--config-text={"tokenizer":{"workerRenderMessages":0}}';
const ONE_CORE = { server: "0", load: "1" };

const h2load = (port: number, n: number, clients: number, streams: number, cpus?: string) => {
  const url = `http://127.0.0.1:${port}/envoy.service.ext_proc.v3.ExternalProcessor/Process`;
  const args = ["-n", String(n), "-c", String(clients), "-m", String(streams), "-t", "1"];
  args.push("-H", "content-type: application/grpc", "-H", "te: trailers", "-d", dataFile, url);
  return cpus === undefined
    ? execFileSync("h2load", args, { encoding: "utf8", timeout: 600_000 })
    : execFileSync("taskset", ["-c", cpus, "h2load", ...args], { encoding: "utf8", timeout: 600_000 });
};

/** The kvpick rows, by the key `--only` selects them with. */
const KVPICK_ROWS: { key: string; name: string; extra: string[]; pin?: Target["cpus"] }[] = [
  { key: "default", name: "`kvpick serve`, default config, pods without KV events", extra: [] },
  { key: "fallback-off", name: "`kvpick serve`, estimated fallback off", extra: [FALLBACK_OFF] },
  {
    key: "worker",
    name: "`kvpick serve`, every chat on the worker (workerRenderMessages 0)",
    extra: [BOTH_CORES],
  },
  {
    key: "pinned",
    name: "`kvpick serve`, default config, pinned to 1 core (h2load on the other)",
    extra: [],
    pin: ONE_CORE,
  },
  {
    key: "pinned-worker",
    name: "`kvpick serve`, every chat on the worker, pinned to 1 core (h2load on the other)",
    extra: [BOTH_CORES],
    pin: ONE_CORE,
  },
];
const targets: (() => Promise<Target>)[] = [];
for (let round = 0; round < ROUNDS; round++) {
  targets.push(noopTarget);
  for (const row of KVPICK_ROWS.filter((r) => ONLY === undefined || ONLY.includes(r.key))) {
    // Base first, then this checkout: alternated, so both see the same stretch of the machine's load.
    if (BASE !== undefined)
      targets.push(() => kvpickTarget(`${row.name} — base (${BASE})`, row.extra, row.pin, BASE));
    targets.push(() => kvpickTarget(row.name, row.extra, row.pin));
  }
}

/** `ceiling`: the ceiling row of the same round (ratios are taken within a round). */
const rows: { name: string; rps: number; cpuMs: number; ok: string; ceiling: number | undefined }[] = [];
try {
  for (const make of targets) {
    const t = await make();
    try {
      // Readiness (the tokenizer loads before the port opens) and warm-up (JIT): until calls succeed.
      for (let i = 0; ; i++) {
        if (/, [1-9]\d* succeeded/.test(h2load(t.port, 20, 1, 1, t.cpus?.load))) break;
        if (i > 600) throw new Error(`${t.name} did not answer h2load within 120 s`);
        await new Promise((r) => setTimeout(r, 200));
      }
      h2load(t.port, 2_000, 4, 16, t.cpus?.load);
      const cpu0 = cpuSeconds(t.pid);
      const out = h2load(t.port, N, 4, 16, t.cpus?.load);
      const cpuMs = ((cpuSeconds(t.pid) - cpu0) * 1000) / N;
      const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)?.[1] ?? Number.NaN);
      const done = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded/.exec(out);
      const ceilingAt = make === noopTarget ? undefined : rows.findLastIndex((r) => r.ceiling === undefined);
      rows.push({ name: t.name, rps, cpuMs, ok: `${done?.[2] ?? "?"}/${N}`, ceiling: ceilingAt });
      const c = ceilingAt === undefined ? undefined : rows[ceilingAt];
      console.log(
        `${t.name}: ${rps.toFixed(0)} req/s, ${cpuMs.toFixed(3)} ms CPU per request (${done?.[2]}/${N} ok)` +
          (c === undefined
            ? ""
            : `; ${(rps / c.rps).toFixed(2)} of the ceiling, ${(cpuMs / c.cpuMs).toFixed(2)}× its CPU`),
      );
    } finally {
      await t.stop();
    }
  }
} finally {
  await Promise.all(pods.map((p) => p.close()));
}
result.tables.push({
  caption: `h2load (C, 1 thread, 4 connections × 16 streams, ${N} calls) replaying one Process call: a ${body.length}-byte chat body (~8k tokens, warm), 8 pods. CPU = the server process's user+system time / calls.`,
  columns: [
    "server",
    "calls ok",
    "req/s",
    "CPU per request",
    "fraction of the ceiling (req/s)",
    "CPU vs the ceiling",
  ],
  rows: rows.map((r) => {
    const ceiling = rows[r.ceiling ?? rows.indexOf(r)]!;
    return [
      r.name,
      r.ok,
      r.rps.toFixed(0),
      `${r.cpuMs.toFixed(3)} ms`,
      (r.rps / ceiling.rps).toFixed(2),
      `${(r.cpuMs / ceiling.cpuMs).toFixed(2)}×`,
    ];
  }),
});
result.notes.push(
  "Targets (issue 16): ≥ 0.5 of the ceiling's req/s with the default config; CPU per warm 8k request ≤ 2.5× the ceiling's.",
  "h2load runs on the same 2 cores: it takes CPU from whichever server is measured, the ceiling included.",
);
// A partial or A/B run prints its figures but leaves the published results file alone.
if (BASE === undefined && ONLY === undefined && ROUNDS === 1) console.log(`wrote ${result.write()}`);
