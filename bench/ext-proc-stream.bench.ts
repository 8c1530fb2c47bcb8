// ext_proc protocol-layer throughput on loopback: N concurrent FULL_DUPLEX streams of a ~32 KB chat body
// (≈ 8k tokens) in 2 chunks against a Router that answers at once, so only gRPC + kvpick's stream handling
// is measured (client and server share this process and its cores). Prints requests/s and the per-request
// latency from the last body chunk sent to the header response received (p50/p99).
import { performance } from "node:perf_hooks";
import { EnvoyClient, splitInto } from "../test/support/envoy-client.js";
import { createExtProcServer } from "../src/ext-proc/server.js";
import { createLogger } from "../src/observability/logger.js";
import { startResult } from "./support/results.js";

const TOTAL = Number(process.env.BENCH_REQUESTS ?? 10_000);
const result = startResult(
  "ext-proc-stream",
  "ext_proc protocol layer",
  `node dist/bench/ext-proc-stream.bench.js${process.env.BENCH_TLS === "1" ? " (BENCH_TLS=1)" : ""}`,
);
const rows: (string | number)[][] = [];
const body = Buffer.from(
  JSON.stringify({
    model: "qwen3",
    messages: [{ role: "user", content: "lorem ipsum dolor ".repeat(1_800) }],
  }),
);

const server = createExtProcServer({
  router: { route: async () => ({ kind: "routed", endpoint: "10.0.0.5:8000" }) },
  logger: createLogger({ level: "warn" }),
  grpcPort: 0,
  healthPort: 0,
  host: "127.0.0.1",
  secureServing: process.env.BENCH_TLS === "1",
  maxBodyBytes: 16 * 1024 * 1024,
  isReady: () => true,
});
const { grpcPort } = await server.start();
const client = new EnvoyClient(`127.0.0.1:${grpcPort}`, { tls: process.env.BENCH_TLS === "1" });
await client.waitForReady();
const chunks = splitInto(body, 2);

for (const concurrency of [1, 16, 64, 256]) {
  const latencies: number[] = [];
  let next = 0;
  const n = concurrency === 1 ? Math.min(TOTAL, 2_000) : TOTAL;
  const worker = async () => {
    while (next++ < n) {
      const t0 = performance.now();
      const r = await client.process({ chunks });
      latencies.push(performance.now() - t0);
      if (r.destination === null || r.violations.length > 0) throw new Error("bad answer");
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!.toFixed(3);
  console.log(
    `concurrency ${String(concurrency).padStart(3)}: ${(n / seconds).toFixed(0)} req/s, whole-stream latency p50 ${q(0.5)} ms p99 ${q(0.99)} ms (body ${body.length} B)`,
  );
  rows.push([
    concurrency,
    n,
    Math.round(n / seconds).toLocaleString("en-US"),
    `${q(0.5)} ms`,
    `${q(0.99)} ms`,
  ]);
}
result.tables.push({
  caption: `A router that answers at once, client and server in one process (they share its core), a ${body.length}-byte chat body in 2 chunks, full FULL_DUPLEX_STREAMED stream; latency = last body chunk sent → header response received.`,
  columns: ["concurrency", "requests", "req/s", "p50", "p99"],
  rows,
});
result.notes.push(
  "The gRPC + stream-handling ceiling of one process; `ext-proc-h2load` measures the same layer with a C generator on its own.",
  "Shared 2-core machine: the load average above is recorded; compare rows of one run as ratios.",
);
console.log(`wrote ${result.write()}`);
client.close();
await server.stop(1_000);
