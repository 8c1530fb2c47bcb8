// The routing decision in-process (no gRPC): Director.route on warm ~7.5k-token chat requests against 8
// endpoints and a BlockIndex, with and without the block-hash memo, plus the stage costs measured apart.
// kvpick's default profile; first with an index that has heard from no pod (every pod scored by the estimated
// fallback: the messages' JSON is built and hashed per request), then with every pod known to the index.
// Last, the precise path with the response end reported (metrics at the end of the response) with tracing
// off and on (every request sampled, spans exported over OTLP/HTTP to a local sink): the cost of tracing.
// Then one body replayed byte for byte (the h2load bench's workload), with the request memo
// (tokenizer.requestMemoBytes) off and on, and distinct bodies with it on (every body a miss: its overhead).
// Writes bench/results/director.json (the `<!-- results:director -->` block of bench/README.md).
// Run: npx tsc -p tsconfig.json && node dist/bench/director.bench.js
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { parseConfig } from "../src/config/load.js";
import type { RouteRequest } from "../src/ext-proc/router.js";
import { BlockHasher } from "../src/kv-index/block-hash.js";
import { BlockIndex } from "../src/kv-index/block-index.js";
import { createLogger } from "../src/observability/logger.js";
import { Metrics } from "../src/observability/metrics.js";
import { RouteMetrics } from "../src/observability/route-metrics.js";
import { createTracing, NO_TRACING, type Tracing } from "../src/observability/tracing.js";
import { Director } from "../src/routing/director.js";
import { createScheduler } from "../src/scheduling/plugins/create-scheduler.js";
import { readModel } from "../src/scheduling/scheduling.fixture.js";
import { buildChatContext } from "../src/tokenization/chat-request.js";
import { ChatTemplate } from "../src/tokenization/chat-template.js";
import { TokenizationService } from "../src/tokenization/tokenization-service.js";
import { bundledTokenizerDir, loadTokenizerFiles } from "../src/tokenization/tokenizer-files.js";
import { startResult } from "./support/results.js";
import { staticPool } from "./support/static-pool.js";

const N = 3000;
const config = parseConfig({ tokenizer: { hashSeed: "42" } });
const logger = createLogger({ level: "info", destination: { write() {} } });
const words = ["policy", "travel", "hotel", "budget", "approval", "economy", "manager", "receipt", "refund"];
const system = (i: number) =>
  [
    `You are assistant #${i}.`,
    ...Array.from(
      { length: 500 },
      (_, s) => `Rule ${s} for customer ${i}: ${words[(s * 7 + i) % 9]} ${s % 13} applies.`,
    ),
  ].join(" ");
const prompts = Array.from({ length: 16 }, (_, i) => system(i));
const body = (i: number, n: number) => ({
  model: "Qwen3-32B",
  messages: [
    { role: "system", content: prompts[i] },
    {
      role: "user",
      content: `Question ${n}: may I book a ${n % 5} star hotel for ${n % 9} nights in city ${n}?`,
    },
  ],
});
const request = (i: number, n: number): RouteRequest => ({
  requestId: `r${n}`,
  method: "POST",
  path: "/v1/chat/completions",
  headers: new Map(),
  body: Buffer.from(JSON.stringify(body(i, n))),
  subsetHint: null,
});

const result = startResult(
  "director",
  "Routing decision in-process (Director.route)",
  "node dist/bench/director.bench.js",
);
const rows: string[][] = [];

/** Mean, p50 and p99 of `fn` over N sequential calls, as one row of the result table. */
async function meanMicros(label: string, fn: (n: number) => unknown): Promise<void> {
  const each = new Float64Array(N);
  const t = performance.now();
  for (let n = 0; n < N; n++) {
    const s = performance.now();
    await fn(n);
    each[n] = performance.now() - s;
  }
  const mean = ((performance.now() - t) / N) * 1000;
  each.sort();
  const q = (p: number) => `${(each[Math.min(N - 1, Math.floor(p * N))]! * 1000).toFixed(0)} µs`;
  const row = [label, `${mean.toFixed(0)} µs`, q(0.5), q(0.99)];
  rows.push(row);
  console.log(`| ${row.join(" | ")} |`);
}

const tokenizer = new TokenizationService({
  config: config.tokenizer,
  logger: createLogger({ level: "silent" }),
});
const endpoints = staticPool(Array.from({ length: 8 }, (_, i) => `10.0.0.${i}:8000`));
const index = new BlockIndex({ maxEntries: 1_000_000, mediumWeights: { GPU: 1, CPU: 0.8 } });
const scheduler = createScheduler(config.scheduling, {
  endpoints,
  ...readModel(config.scheduling, index),
});

/** A director over the shared tokenizer, scheduler and pool, warmed with one request per system prompt. */
async function warmDirector(
  hasher: BlockHasher,
  tracer?: Tracing["tracer"],
  requestMemoBytes = 0,
): Promise<Director> {
  const director = new Director({
    requestMemoBytes,
    tokenizer,
    hasher,
    scheduler,
    endpoints,
    logger,
    recorder: new RouteMetrics(new Metrics()),
    ...(tracer === undefined ? {} : { tracer }),
  });
  for (let i = 0; i < 16; i++) await director.route(request(i, i));
  return director;
}

// Warm the token cache with every system prompt.
for (let i = 0; i < 16; i++) await tokenizer.tokenize("Qwen3-32B", "/v1/chat/completions", body(i, -1));
const sample = await tokenizer.tokenize("Qwen3-32B", "/v1/chat/completions", body(0, 0));
console.log(`# Director.route, warm ${sample.tokenIds.length}-token chat requests, 8 endpoints, ${N} runs`);
console.log("| step | mean | p50 | p99 |");
console.log("|---|---:|---:|---:|");
const bodies = Array.from({ length: N }, (_, n) => request(n % 16, 1000 + n));
for (const memoBlocks of [0, 65_536]) {
  const hasher = new BlockHasher({ scheme: "sha256_cbor_64bit", hashSeed: "42", blockSize: 64, memoBlocks });
  const director = await warmDirector(hasher);
  await meanMicros(`Director.route, memo ${memoBlocks} blocks, no pod known (estimated fallback)`, (n) =>
    director.route(bodies[n]!),
  );
}
// The request memo: one body replayed (off / on), and distinct bodies with it on (misses only).
for (const [label, memoBytes, replay] of [
  ["distinct bodies, request memo off (a body never seen before)", 0, false],
  ["one body replayed, request memo off", 0, true],
  ["one body replayed, request memo on", config.tokenizer.requestMemoBytes, true],
  ["distinct bodies, request memo on (every body a miss)", config.tokenizer.requestMemoBytes, false],
] as const) {
  const hasher = new BlockHasher({
    scheme: "sha256_cbor_64bit",
    hashSeed: "42",
    blockSize: 64,
    memoBlocks: 65_536,
  });
  const director = await warmDirector(hasher, undefined, memoBytes);
  await meanMicros(`Director.route, ${label}, no pod known (estimated fallback)`, (n) =>
    director.route(replay ? bodies[0]! : bodies[n]!),
  );
}
// Every pod publishes KV events: the index knows it (one block each), so the precise path alone runs.
const known = BigUint64Array.of(7n);
for (let i = 0; i < 8; i++) index.store(`10.0.0.${i}:8000`, "GPU", new Uint32Array(known.buffer), 1);
{
  const hasher = new BlockHasher({
    scheme: "sha256_cbor_64bit",
    hashSeed: "42",
    blockSize: 64,
    memoBlocks: 65_536,
  });
  const director = await warmDirector(hasher);
  await meanMicros("Director.route, memo 65536 blocks, every pod known (precise)", (n) =>
    director.route(bodies[n]!),
  );
}
// Tracing off vs on, with the response end reported as the stream would (onDone), over the precise path.
const sink = createServer((req, res) => {
  req.resume();
  req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end("{}"));
});
sink.listen(0, "127.0.0.1");
await once(sink, "listening");
const sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/v1/traces`;
const sampled = bodies.map((b, n) => ({
  ...b,
  headers: new Map([["traceparent", `00-${(n + 1).toString(16).padStart(32, "0")}-00f067aa0ba902b7-01`]]),
}));
for (const [label, tracing] of [
  ["off", NO_TRACING],
  [
    "on (every request sampled, OTLP/HTTP to a local sink)",
    createTracing({ enabled: true }, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: sinkUrl }, logger),
  ],
] as [string, Tracing][]) {
  const hasher = new BlockHasher({
    scheme: "sha256_cbor_64bit",
    hashSeed: "42",
    blockSize: 64,
    memoBlocks: 65_536,
  });
  const director = await warmDirector(hasher, tracing.tracer);
  await meanMicros(`Director.route + response end, precise, tracing ${label}`, async (n) => {
    const outcome = await director.route(sampled[n]!);
    if (outcome.kind === "routed") outcome.observer?.onDone?.("complete");
  });
  await tracing.stop();
}
sink.close();
{
  // What tracing off adds to one request: the director's calls on the shared no-op trace.
  const headers = new Map<string, string>();
  const runs = 1_000_000;
  const t = performance.now();
  for (let n = 0; n < runs; n++) {
    const trace = NO_TRACING.tracer.start(headers);
    for (const stage of ["parse", "tokenize", "hash", "schedule"]) trace.stage(stage, n, n + 1);
    for (let a = 0; a < 9; a++) trace.set("kvpick.attribute", n);
    trace.end();
  }
  const ns = (((performance.now() - t) / runs) * 1e6).toFixed(0);
  rows.push(["tracing off: start + 4 stages + 9 attributes + end on the no-op trace", `${ns} ns`, "", ""]);
  console.log(`| ${rows.at(-1)!.join(" | ")} |`);
}
const parsed = bodies.map((b) => JSON.parse(b.body.toString()) as Record<string, unknown>);
await meanMicros("JSON.parse of the body", (n) => JSON.parse(bodies[n]!.body.toString()));
await meanMicros("render (chat template)", (n) => tokenizer.renderChat("Qwen3-32B", parsed[n]!));
{
  // The same renders through the Jinja interpreter (what every chat paid before qwen3-chat-render.ts).
  const files = await loadTokenizerFiles(bundledTokenizerDir());
  const jinja = new ChatTemplate(files.chatTemplate!);
  await meanMicros("render, Jinja interpreter always (the reference)", (n) =>
    jinja.interpret(buildChatContext(parsed[n]!, jinja, files.specialTokens).context),
  );
}
await meanMicros("render + tokenize (warm)", (n) =>
  tokenizer.tokenize("Qwen3-32B", "/v1/chat/completions", parsed[n]!),
);
const plain = new BlockHasher({ scheme: "sha256_cbor_64bit", hashSeed: "42", blockSize: 64 });
const memo = new BlockHasher({
  scheme: "sha256_cbor_64bit",
  hashSeed: "42",
  blockSize: 64,
  memoBlocks: 65_536,
});
await meanMicros("hash, no memo", () => plain.hash(sample.tokenIds));
await meanMicros("hash, memo", () => memo.hash(sample.tokenIds));
await tokenizer.stop();
result.tables.push({
  caption:
    `\`Director.route\` in-process (no gRPC), kvpick's default profile, warm ${sample.tokenIds.length}-token chats ` +
    `(16 long system prompts, a distinct user turn per request unless said), 8 endpoints, ${N} sequential ` +
    "calls per row; then the stages measured apart. Times include the event loop's turns between awaits.",
  columns: ["step", "mean", "p50", "p99"],
  rows,
});
result.notes.push(
  '"Memo N blocks" = the exact block-hash memo (`tokenizer.hashMemoBlocks`, default 65,536); "request memo" = `tokenizer.requestMemoBytes` (a body seen before skips parse, render, tokenize and hash).',
  '"No pod known": the index has heard from no pod, so every pod is scored by the estimated fallback; "every pod known": the precise path alone.',
  "Shared 2-core machine: the load average above is recorded; compare rows of one run as ratios.",
);
console.log(`wrote ${result.write()}`);
