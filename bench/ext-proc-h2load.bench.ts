// ext_proc throughput with a load generator that costs (almost) nothing: nghttp2's h2load (C, Debian package
// nghttp2-client) replays one pre-encoded gRPC Process call — request headers, then the whole ~8k-token body
// with end_of_stream, then half-close — against a real `kvpick serve` child with 8 fake pods. kvpick answers
// the header response and the body echo, then ends the call when the client half-closes. Every request is
// the same prompt, so tokenization is fully cached: this measures kvpick's ceiling, not a realistic mix
// (see ext-proc-load.bench.ts for distinct user turns). The same replay against the noop EPP
// (support/noop-epp.ts: a grpc-js server that only answers as an EPP must) is the transport ceiling, and
// kvpick's figures are reported as a fraction of it (issue 16: ≥ 0.5 of its req/s, ≤ 2.5× its CPU per
// request). Writes bench/results/ext-proc-h2load.json.
// Rows with a distinct body per call ("distinct…", and a ceiling of their own) use support/h2-replay.ts, a
// raw-frame generator, since h2load replays one file. Every row reports the generator's CPU as well.
// Run: apt-get install nghttp2-client; npx tsc -p tsconfig.json && node dist/bench/ext-proc-h2load.bench.js [--profile]
//   [--only default,kv-events,memo-off,distinct,fallback-off,worker,distinct-worker,pinned,pinned-worker,
//   memo-off-pinned,distinct-pinned,distinct-worker-pinned,thread-off,memo-off-thread-off,distinct-thread-off,
//   pinned-thread-off,memo-off-thread-off-pinned,distinct-thread-off-pinned] [--base <checkout>] [--rounds N]
// ext_proc is served on its own thread by default (server.grpcThread); the *thread-off* rows serve it on the
// main thread (--grpc-thread=false). With --base they run on this checkout only (the base has no such flag).
// --profile: kvpick's CPU profile in /tmp/kvpick-prof. --only: those kvpick rows (the ceiling always runs).
// --base: the same rows also from another built checkout (e.g. a worktree of main), alternated with this one
// in the same run, so a before/after comparison shares the machine's load. --rounds: the whole sequence N times.
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as protoLoader from "@grpc/proto-loader";
import { parseConfig } from "../src/config/load.js";
import { LOADER_OPTIONS, PROTO_DIR } from "../src/ext-proc/protos.js";
import { BlockHasher } from "../src/kv-index/block-hash.js";
import { createLogger } from "../src/observability/logger.js";
import { TokenizationService } from "../src/tokenization/tokenization-service.js";
import { FakeVllmPod } from "../test/support/fake-vllm-pod.js";
import { KvEventPublisher } from "../test/support/kv-event-publisher.js";
import { freePort } from "../test/support/free-port.js";
import { until } from "../test/support/until.js";
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

/** CPU seconds of each of the process's threads, by thread id (with its name, `comm`). */
function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const f = stat.split(") ")[1]!.split(" ");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      out.set(`${tid} ${comm}`, (Number(f[11]) + Number(f[12])) / 100);
    } catch {
      // the thread exited between the listing and the read
    }
  }
  return out;
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

// The distinct-bodies workload: the same long system prompt, a user turn numbered per call ("Question
// 00000042: …", fixed width so every frame length holds), sent by support/h2-replay.ts (h2load replays one file).
const COUNTER_WIDTH = 8;
const distinctBody = Buffer.from(
  JSON.stringify({
    model: "Qwen3-32B",
    messages: [
      { role: "system", content: system },
      {
        role: "user",
        content: `Question ${"0".repeat(COUNTER_WIDTH)}: may I book a 4 star hotel for 3 nights?`,
      },
    ],
  }),
);
const distinctPayload = Buffer.concat([
  grpcFrame(process_.requestSerialize(requestHeadersMessage("/v1/chat/completions"))),
  grpcFrame(process_.requestSerialize({ request_body: { body: distinctBody, end_of_stream: true } })),
]);
const counterAt = distinctPayload.indexOf(`Question ${"0".repeat(COUNTER_WIDTH)}`) + "Question ".length;
const distinctFile = join(tmpdir(), `kvpick-h2replay-${process.pid}.bin`);
writeFileSync(distinctFile, distinctPayload);
/** Each generator run numbers its calls from a fresh range: no body is ever sent twice. */
let counterStart = 0;

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
  /** kvpick's /metrics port (undefined for the ceiling). */
  metricsPort?: number;
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

/** The body's block chain as vLLM hashes it (seed 42 as spawnServe passes, the fake pods' block size). */
async function bodyChain(): Promise<bigint[]> {
  const tokenizer = new TokenizationService({
    config: parseConfig({}).tokenizer,
    logger: createLogger({ level: "silent" }),
  });
  try {
    const { tokenIds } = await tokenizer.tokenize(
      "Qwen3-32B",
      "/v1/chat/completions",
      JSON.parse(body.toString()) as Record<string, unknown>,
    );
    return [
      ...new BlockHasher({ scheme: "sha256_cbor_64bit", hashSeed: "42", blockSize: 64 }).hash(tokenIds),
    ];
  } finally {
    await tokenizer.stop();
  }
}

/**
 * Every pod publishes KV events: the prompt's blocks stored on two of them, one unrelated block on the others,
 * so no pod is matched by the estimated fallback. Resent until kvpick's index holds them (slow joiners).
 */
async function publishEvents(kvPort: number, metricsPort: number): Promise<void> {
  const chain = await bodyChain();
  const pubs = pods.map((p) => {
    const pub = new KvEventPublisher({ topic: `kv@${p.ip}@Qwen3-32B` });
    pub.connect(`tcp://127.0.0.1:${kvPort}`);
    return pub;
  });
  const expected = chain.length + pods.length - 2; // distinct hashes
  try {
    for (let round = 0; ; round++) {
      for (const [i, pub] of pubs.entries()) {
        const hashes = i === 1 || i === 4 ? chain : [BigInt(1000 + i)];
        await pub.publish([{ type: "BlockStored", hashes, parent: null, blockSize: 64 }]);
      }
      await new Promise((r) => setTimeout(r, 100));
      // The metrics port opens after the tokenizer loads: not answering yet is "not indexed yet".
      const page = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
        .then((r) => r.text())
        .catch(() => "");
      if (Number(/^epp_kv_index_blocks (\d+)/m.exec(page)?.[1] ?? 0) >= expected) return;
      if (round > 300) throw new Error("kvpick did not index the KV events within 30 s");
    }
  } finally {
    for (const p of pubs) p.close();
  }
}

/** Waits until the child serves /metrics (true) or has exited (false). */
async function answersMetrics(serve: Awaited<ReturnType<typeof spawnServe>>): Promise<boolean> {
  const exited = () => serve.proc.exitCode !== null || serve.proc.signalCode !== null;
  const serves = () =>
    fetch(`http://127.0.0.1:${serve.metricsPort}/metrics`).then(
      (r) => r.ok,
      () => false, // not listening yet
    );
  await until(
    async () => exited() || (await serves()),
    "kvpick serve to serve /metrics or exit",
    120_000,
    100,
  );
  return !exited();
}

async function kvpickTarget(
  name: string,
  extra: string[],
  pin?: Target["cpus"],
  root?: string,
  kvEvents = false,
): Promise<Target> {
  const start = () =>
    spawnServe([`--endpoints=${pods.map((p) => p.address).join(",")}`, "--log-level=warn", ...extra], {
      nodeArgs: process.argv.includes("--profile") ? ["--cpu-prof", "--cpu-prof-dir=/tmp/kvpick-prof"] : [],
      ...(root === undefined ? {} : { root }),
    });
  // The child is told its ports up front: one that another process took between the pick and the child's
  // bind (EADDRINUSE; the generators' own connections use the same ephemeral range) makes it exit at start.
  // Start again with new ports rather than lose the whole run.
  let serve = await start();
  for (let attempt = 1; !(await answersMetrics(serve)); attempt++) {
    if (attempt >= 3) throw new Error(`${name}: kvpick serve exited at start ${attempt} times`);
    console.log(`${name}: kvpick serve exited at start (code ${serve.proc.exitCode}), starting it again`);
    serve = await start();
  }
  // -a: every thread that exists (the tokenizer workers start with the server); later ones inherit it.
  if (pin !== undefined) execFileSync("taskset", ["-a", "-cp", pin.server, String(serve.proc.pid)]);
  if (kvEvents) await publishEvents(serve.kvPort, serve.metricsPort);
  return {
    name,
    pid: serve.proc.pid!,
    port: serve.grpcPort,
    metricsPort: serve.metricsPort,
    stop: () => serve.stop(),
    ...(pin === undefined ? {} : { cpus: pin }),
  };
}

const FALLBACK_OFF =
  '--config-text={"scheduling":{"scorers":[{"type":"ttft-cost-scorer","weight":1,"parameters":{"estimatedFallback":false}}]}}';

const MEMO_OFF = '--config-text={"tokenizer":{"requestMemoBytes":0}}';

// Every chat rendered, tokenized and hashed on the tokenizer worker: the main thread keeps gRPC and scheduling.
const BOTH_CORES = '--config-text={"tokenizer":{"workerRenderMessages":0}}';
const ONE_CORE = { server: "0", load: "1" };
const GRPC_THREAD_OFF = "--grpc-thread=false";

/** One generator run: what it printed, its req/s and calls ok, and its own CPU (user + system), seconds. */
interface LoadRun {
  out: string;
  rps: number;
  ok: number;
  genCpu: number;
}

/**
 * h2load under bash, whose `times` then prints the children's user and system CPU: h2load's own CPU, read
 * from the kernel's accounting of the exited child (as getrusage(RUSAGE_CHILDREN) would).
 */
const h2load = (port: number, n: number, clients: number, streams: number, cpus?: string): LoadRun => {
  const url = `http://127.0.0.1:${port}/envoy.service.ext_proc.v3.ExternalProcessor/Process`;
  const args = ["-n", String(n), "-c", String(clients), "-m", String(streams), "-t", "1"];
  args.push("-H", "content-type: application/grpc", "-H", "te: trailers", "-d", dataFile, url);
  const cmd = cpus === undefined ? ["h2load", ...args] : ["taskset", "-c", cpus, "h2load", ...args];
  const out = execFileSync("bash", ["-c", '"$@"; times', "bash", ...cmd], {
    encoding: "utf8",
    timeout: 600_000,
  });
  const t = [...out.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
  return {
    out,
    rps: Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)?.[1] ?? Number.NaN),
    ok: Number(/requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded/.exec(out)?.[1] ?? 0),
    genCpu: (t[2] ?? Number.NaN) + (t[3] ?? Number.NaN), // second line of `times`: the children
  };
};

/** support/h2-replay.ts with a distinct body per call; it reports its own CPU (process.cpuUsage). */
const h2replay = (port: number, n: number, clients: number, streams: number, cpus?: string): LoadRun => {
  const script = join(repoRoot, "dist", "bench", "support", "h2-replay.js");
  const args = [script, String(port), String(n), String(clients), String(streams), distinctFile];
  args.push(String(counterAt), String(COUNTER_WIDTH), String(counterStart));
  counterStart += n;
  const cmd =
    cpus === undefined ? [process.execPath, ...args] : ["taskset", "-c", cpus, process.execPath, ...args];
  const out = execFileSync(cmd[0]!, cmd.slice(1), { encoding: "utf8", timeout: 600_000 });
  const r = JSON.parse(out) as { ok: number; rps: number; cpuMsPerCall: number; calls: number };
  return { out, rps: r.rps, ok: r.ok, genCpu: (r.cpuMsPerCall * r.calls) / 1000 };
};

type Generator = "h2load" | "distinct";

/** The kvpick rows, by the key `--only` selects them with. */
const KVPICK_ROWS: {
  key: string;
  name: string;
  extra: string[];
  pin?: Target["cpus"];
  kvEvents?: boolean;
  /** h2load replaying one body (default), or h2-replay sending a distinct body per call. */
  gen?: Generator;
  /** Uses a flag the --base checkout may not have (server.grpcThread): not run on the base. */
  newOnly?: boolean;
}[] = [
  { key: "default", name: "`kvpick serve`, default config, pods without KV events", extra: [] },
  {
    key: "kv-events",
    name: "`kvpick serve`, default config, every pod publishing KV events (prompt cached on 2)",
    extra: [],
    kvEvents: true,
  },
  {
    // h2load replays ONE body, which the request memo answers from its second sighting: this row shows what
    // a body kvpick has not seen before costs (the system prompt's tokens still come from the token cache).
    key: "memo-off",
    name: "`kvpick serve`, request memo off (every body parsed, rendered, tokenized, hashed)",
    extra: [MEMO_OFF],
  },
  {
    // A body never seen before, for real: the request memo misses every call.
    key: "distinct",
    name: "`kvpick serve`, default config, a distinct body per call (shared system prompt, new user turn)",
    extra: [],
    gen: "distinct",
  },
  { key: "fallback-off", name: "`kvpick serve`, estimated fallback off", extra: [FALLBACK_OFF] },
  {
    key: "worker",
    name: "`kvpick serve`, every chat on the worker (workerRenderMessages 0)",
    extra: [BOTH_CORES],
  },
  {
    key: "distinct-worker",
    name: "`kvpick serve`, distinct bodies, every chat on the worker (workerRenderMessages 0)",
    extra: [BOTH_CORES],
    gen: "distinct",
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
  {
    key: "memo-off-pinned",
    name: "`kvpick serve`, request memo off, pinned to 1 core (h2load on the other)",
    extra: [MEMO_OFF],
    pin: ONE_CORE,
  },
  {
    key: "distinct-pinned",
    name: "`kvpick serve`, distinct bodies, pinned to 1 core (the generator on the other)",
    extra: [],
    pin: ONE_CORE,
    gen: "distinct",
  },
  {
    key: "distinct-worker-pinned",
    name: "`kvpick serve`, distinct bodies, every chat on the worker, pinned to 1 core (the generator on the other)",
    extra: [BOTH_CORES],
    pin: ONE_CORE,
    gen: "distinct",
  },
  // server.grpcThread is on by default: these rows serve ext_proc on the main thread, as before it existed.
  {
    key: "thread-off",
    name: "`kvpick serve`, default config, ext_proc on the main thread (--grpc-thread=false)",
    extra: [GRPC_THREAD_OFF],
    newOnly: true,
  },
  {
    key: "memo-off-thread-off",
    name: "`kvpick serve`, request memo off, ext_proc on the main thread",
    extra: [MEMO_OFF, GRPC_THREAD_OFF],
    newOnly: true,
  },
  {
    key: "distinct-thread-off",
    name: "`kvpick serve`, distinct bodies, ext_proc on the main thread",
    extra: [GRPC_THREAD_OFF],
    gen: "distinct",
    newOnly: true,
  },
  {
    key: "pinned-thread-off",
    name: "`kvpick serve`, default config, ext_proc on the main thread, pinned to 1 core (h2load on the other)",
    extra: [GRPC_THREAD_OFF],
    pin: ONE_CORE,
    newOnly: true,
  },
  {
    key: "memo-off-thread-off-pinned",
    name: "`kvpick serve`, request memo off, ext_proc on the main thread, pinned to 1 core (h2load on the other)",
    extra: [MEMO_OFF, GRPC_THREAD_OFF],
    pin: ONE_CORE,
    newOnly: true,
  },
  {
    key: "distinct-thread-off-pinned",
    name: "`kvpick serve`, distinct bodies, ext_proc on the main thread, pinned to 1 core (the generator on the other)",
    extra: [GRPC_THREAD_OFF],
    pin: ONE_CORE,
    gen: "distinct",
    newOnly: true,
  },
];
const CEILING_NAME: Record<Generator, string> = {
  h2load: "grpc-js EPP that does nothing (the ceiling)",
  distinct: "grpc-js EPP that does nothing (the ceiling), distinct bodies (h2-replay)",
};
const selected = KVPICK_ROWS.filter((r) => ONLY === undefined || ONLY.includes(r.key));
const generators = [...new Set(selected.map((r) => r.gen ?? "h2load"))];
if (!generators.includes("h2load")) generators.unshift("h2load");
const targets: { make: () => Promise<Target>; gen: Generator; ceiling: boolean; key: string }[] = [];
for (let round = 0; round < ROUNDS; round++) {
  for (const gen of generators) {
    targets.push({
      make: async () => ({ ...(await noopTarget()), name: CEILING_NAME[gen] }),
      gen,
      ceiling: true,
      key: `ceiling-${gen}`,
    });
  }
  for (const row of selected) {
    const gen = row.gen ?? "h2load";
    // Base first, then this checkout: alternated, so both see the same stretch of the machine's load.
    if (BASE !== undefined && row.newOnly !== true)
      targets.push({
        make: () => kvpickTarget(`${row.name} — base (${BASE})`, row.extra, row.pin, BASE, row.kvEvents),
        gen,
        ceiling: false,
        key: `${row.key}-base`,
      });
    targets.push({
      make: () => kvpickTarget(row.name, row.extra, row.pin, undefined, row.kvEvents),
      gen,
      ceiling: false,
      key: row.key,
    });
  }
}

interface Row {
  key: string;
  name: string;
  rps: number;
  cpuMs: number;
  genCpuMs: number;
  /** CPU seconds per wall second over the measured run: the server's (every thread), the generator's. */
  serverCores: number;
  genCores: number;
  ok: string;
  /** The ceiling row of the same round and generator (ratios are taken within a round). */
  ceiling: number | undefined;
}
const rows: Row[] = [];
try {
  for (const { make, gen, ceiling, key } of targets) {
    const t = await make();
    const load = gen === "h2load" ? h2load : h2replay;
    try {
      // Readiness (the tokenizer loads before the port opens) and warm-up (JIT): until calls succeed.
      for (let i = 0; ; i++) {
        if (/, [1-9]\d* succeeded/.test(h2load(t.port, 20, 1, 1, t.cpus?.load).out)) break;
        if (i > 600) throw new Error(`${t.name} did not answer h2load within 120 s`);
        await new Promise((r) => setTimeout(r, 200));
      }
      load(t.port, 2_000, 4, 16, t.cpus?.load);
      const cpu0 = cpuSeconds(t.pid);
      const threads0 = threadCpu(t.pid);
      const wall0 = performance.now();
      const run = load(t.port, N, 4, 16, t.cpus?.load);
      const wall = (performance.now() - wall0) / 1000;
      const serverCpu = cpuSeconds(t.pid) - cpu0;
      // The busiest threads (cores each): shows which one is saturated (the main thread, the ext_proc
      // serving thread, a tokenizer worker, V8's GC helpers).
      const busiest = [...threadCpu(t.pid)]
        .map(([k, v]) => [k, (v - (threads0.get(k) ?? 0)) / wall] as const)
        .sort((a, b) => b[1] - a[1])
        .slice(0, 4)
        .map(([k, v]) => `${k} ${v.toFixed(2)}`);
      console.log(`${t.name}: busiest threads (cores): ${busiest.join(", ")}`);
      const cpuMs = (serverCpu * 1000) / N;
      const ceilingAt = ceiling ? undefined : rows.findLastIndex((r) => r.key === `ceiling-${gen}`);
      rows.push({
        key,
        name: t.name,
        rps: run.rps,
        cpuMs,
        genCpuMs: (run.genCpu * 1000) / N,
        serverCores: serverCpu / wall,
        genCores: run.genCpu / wall,
        ok: `${run.ok}/${N}`,
        ceiling: ceilingAt,
      });
      const c = ceilingAt === undefined ? undefined : rows[ceilingAt];
      let hit = "";
      if (t.metricsPort !== undefined) {
        // The routing still works as it should: the mean prefix hit ratio on the chosen pod; and the memo.
        const page = await (await fetch(`http://127.0.0.1:${t.metricsPort}/metrics`)).text();
        const sum = Number(/^epp_prefix_hit_ratio_sum (\S+)/m.exec(page)?.[1]);
        const count = Number(/^epp_prefix_hit_ratio_count (\S+)/m.exec(page)?.[1]);
        const memoHits = Number(
          /^epp_request_memo_lookups_total\{result="hit"\} (\S+)/m.exec(page)?.[1] ?? 0,
        );
        hit = `, mean prefix hit ratio ${(sum / count).toFixed(3)}, request memo hits ${memoHits}`;
      }
      const r = rows.at(-1)!;
      console.log(
        `${t.name}: ${run.rps.toFixed(0)} req/s, ${cpuMs.toFixed(3)} ms CPU per request (${run.ok}/${N} ok${hit}); ` +
          `generator ${r.genCpuMs.toFixed(3)} ms CPU per request; cores used: server ${r.serverCores.toFixed(2)}, generator ${r.genCores.toFixed(2)}` +
          (c === undefined
            ? ""
            : `; ${(run.rps / c.rps).toFixed(2)} of the ceiling, ${(cpuMs / c.cpuMs).toFixed(2)}× its CPU`),
      );
    } finally {
      await t.stop();
    }
  }
} finally {
  await Promise.all(pods.map((p) => p.close()));
}
result.tables.push({
  caption:
    `4 connections × 16 streams, ${N} calls per row, 8 pods. h2load (C, 1 thread) replays one Process call: a ${body.length}-byte chat body (~8k tokens, warm); ` +
    `"distinct" rows (and their ceiling) use support/h2-replay.ts instead: the same system prompt with a numbered user turn, a body never sent before on every call. ` +
    "CPU = the process's user+system time / calls (the server: every thread; the generator: h2load's from bash `times`, h2-replay's from process.cpuUsage). " +
    "Cores used = CPU seconds / wall seconds over the measured run.",
  columns: [
    "server",
    "calls ok",
    "req/s",
    "CPU per request",
    "fraction of the ceiling (req/s)",
    "CPU vs the ceiling",
    "generator CPU per request",
    "cores used: server / generator",
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
      `${r.genCpuMs.toFixed(3)} ms`,
      `${r.serverCores.toFixed(2)} / ${r.genCores.toFixed(2)}`,
    ];
  }),
});
// Both cores: each unpinned row against its pinned twin of the same round (kvpick on CPU 0, generator on CPU 1).
const PAIRS: [string, string][] = [
  ["default", "pinned"],
  ["worker", "pinned-worker"],
  ["memo-off", "memo-off-pinned"],
  ["distinct", "distinct-pinned"],
  ["distinct-worker", "distinct-worker-pinned"],
  ["thread-off", "pinned-thread-off"],
  ["memo-off-thread-off", "memo-off-thread-off-pinned"],
  ["distinct-thread-off", "distinct-thread-off-pinned"],
];
const pairRows: string[][] = [];
for (const [two, one] of PAIRS) {
  for (const suffix of ["", "-base"]) {
    for (let i = 0; i < rows.length; i++) {
      const a = rows[i]!;
      if (a.key !== two + suffix) continue;
      const b = rows.slice(i).find((r) => r.key === one + suffix && r.ceiling === a.ceiling);
      if (b === undefined) continue;
      pairRows.push([
        a.name,
        `${a.rps.toFixed(0)} / ${b.rps.toFixed(0)}`,
        `${(a.rps / b.rps).toFixed(2)}×`,
        `${a.serverCores.toFixed(2)} / ${b.serverCores.toFixed(2)}`,
        `${a.genCores.toFixed(2)}`,
        `${(2 - a.genCores).toFixed(2)}`,
      ]);
    }
  }
}
if (pairRows.length > 0) {
  result.tables.push({
    caption:
      "Both cores: req/s unpinned (kvpick and the generator share the 2 cores) vs pinned (kvpick on CPU 0, the generator on CPU 1), same round. " +
      "The generator's own cores are measured, so `2 − generator cores` is what kvpick could have had unpinned.",
    columns: [
      "configuration",
      "req/s 2 cores / 1 core",
      "ratio",
      "kvpick cores used (2 / 1)",
      "generator cores (unpinned)",
      "cores left for kvpick (unpinned)",
    ],
    rows: pairRows,
  });
  for (const r of pairRows) console.log(`both cores: ${r.join(" | ")}`);
}
result.notes.push(
  "Targets (issue 16): ≥ 0.5 of the ceiling's req/s with the default config; CPU per warm 8k request ≤ 2.5× the ceiling's; 2 cores ≥ 1.7× 1 core.",
  "The generator runs on the same 2 cores: it takes CPU from whichever server is measured, the ceiling included; its CPU is in the table.",
);
// A partial or A/B run prints its figures but leaves the published results file alone.
if (BASE === undefined && ONLY === undefined && ROUNDS === 1) console.log(`wrote ${result.write()}`);
