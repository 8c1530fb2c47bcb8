// ext_proc throughput with a load generator that costs (almost) nothing: nghttp2's h2load (C, Debian package
// nghttp2-client) replays one pre-encoded gRPC Process call — request headers, then the whole ~8k-token body
// with end_of_stream, then half-close — against a real `kvpick serve` child with 8 fake pods. kvpick answers
// the header response and the body echo, then ends the call when the client half-closes. Every request is
// the same prompt, so tokenization is fully cached: this measures kvpick's ceiling, not a realistic mix
// (see ext-proc-load.bench.ts for distinct user turns).
// Run: apt-get install nghttp2-client; npx tsc -p tsconfig.json && node dist/bench/ext-proc-h2load.bench.js [--profile]
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as protoLoader from "@grpc/proto-loader";
import { LOADER_OPTIONS, PROTO_DIR } from "../src/ext-proc/protos.js";
import { FakeVllmPod } from "../test/support/fake-vllm-pod.js";
import { requestHeadersMessage, spawnServe } from "../test/support/serve-child.js";

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

const pods = await Promise.all(
  Array.from({ length: 8 }, (_, i) => new FakeVllmPod(`127.0.0.${71 + i}`).start()),
);
const serve = await spawnServe([`--endpoints=${pods.map((p) => p.address).join(",")}`, "--log-level=warn"], {
  nodeArgs: process.argv.includes("--profile") ? ["--cpu-prof", "--cpu-prof-dir=/tmp/kvpick-prof"] : [],
});
const { grpcPort } = serve;
const child = serve.proc;
try {
  const url = `http://127.0.0.1:${grpcPort}/envoy.service.ext_proc.v3.ExternalProcessor/Process`;
  const h2load = (n: number, clients: number, streams: number, rate?: number) => {
    const args = ["-n", String(n), "-c", String(clients), "-m", String(streams), "-t", "1"];
    if (rate !== undefined) args.push("-r", String(rate), "--rate-period", "0.1");
    args.push("-H", "content-type: application/grpc", "-H", "te: trailers", "-d", dataFile, url);
    return execFileSync("h2load", args, { encoding: "utf8", timeout: 300_000 });
  };
  // Readiness (the tokenizer loads before the port opens) and warm-up (JIT): until a call succeeds.
  for (let i = 0; ; i++) {
    if (/, [1-9]\d* succeeded/.test(h2load(20, 1, 1))) break;
    if (i > 300) throw new Error("kvpick did not answer h2load within 60 s");
    await new Promise((r) => setTimeout(r, 200));
  }
  console.log(
    `# ext_proc under h2load (C generator): ${body.length}-byte chat body (~8k tokens, fully cached), 8 pods`,
  );
  console.log("| load | requests | req/s | request time mean / max | EPP CPU per request |");
  console.log("|---|---:|---:|---|---:|");
  const row = (name: string, n: number, c: number, m: number, rate?: number) => {
    const cpu0 = cpuSeconds(child.pid!);
    const out = h2load(n, c, m, rate);
    const cpuMs = ((cpuSeconds(child.pid!) - cpu0) * 1000) / n;
    const rps = /finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)?.[1] ?? "?";
    const done = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded/.exec(out);
    const time = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out);
    console.log(
      `| ${name} | ${done?.[2] ?? "?"}/${n} | ${Number(rps).toFixed(0)} | ${time?.[3] ?? "?"} / ${time?.[2] ?? "?"} | ${cpuMs.toFixed(3)} ms |`,
    );
  };
  row("4 connections × 16 streams", 20_000, 4, 16);
  row("16 connections × 16 streams", 20_000, 16, 16);
} finally {
  await serve.stop();
  await Promise.all(pods.map((p) => p.close()));
}
