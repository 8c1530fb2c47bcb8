// KV-event replay on one core, real sockets: a simulated vLLM replay ROUTER holding a full ring
// (buffer_steps = 10,000 batches of 4 BlockStored × 16 blocks, like kv-events.bench.ts) → kvpick's DEALER →
// decode → apply. Reports recovery throughput and the longest event-loop stall while it runs (replies are
// applied in slices so requests keep being served), and how many times the replay had to be resumed: the
// ROUTER runs at vLLM's socket defaults (send high-water mark 1,000, not mandatory), so it drops replies it
// cannot queue, in the middle of a reply as well as its tail, and kvpick resumes from the first one missing.
// Run: node --expose-gc dist/bench/kv-replay.bench.js
import { monitorEventLoopDelay } from "node:perf_hooks";
import { seqFrame } from "../test/support/kv-event-publisher.js";
import { configSchema } from "../src/config/schema.js";
import { KvEventIngest } from "../src/kv-events/ingest.js";
import { BlockIndex } from "../src/kv-index/block-index.js";
import { createLogger } from "../src/observability/logger.js";
import { Metrics } from "../src/observability/metrics.js";
import { LiveClock } from "../src/sim/clock.js";
import type { SimEventBatch } from "../src/sim/kv-event.js";
import { SimKvEventPublisher } from "../src/sim/kv-event-publisher.js";
import { fmt, hash64From, xorshift32 } from "./support/bench-random.js";
import { startResult } from "./support/results.js";

const rnd32 = xorshift32(0x2545f491);
const hash64 = hash64From(rnd32);

const BATCHES = 10_000;
const EVENTS = 4;
const BLOCKS = 16;
const BS = 64;
const KV = configSchema.parse({}).kvEvents;
const result = startResult("kv-replay", "KV-event replay", "node --expose-gc dist/bench/kv-replay.bench.js");
const rows: string[][] = [];

function batch(i: number): SimEventBatch {
  return {
    ts: 1_753_315_200 + i,
    events: Array.from({ length: EVENTS }, (_, e) => ({
      type: "BlockStored" as const,
      hashes: Array.from({ length: BLOCKS }, hash64),
      parent: e === 0 ? null : hash64(),
      tokenIds: Array.from({ length: BLOCKS * BS }, () => rnd32() % 151_000),
      blockSize: BS,
      medium: "GPU" as const,
    })),
  };
}

async function run(layout: "v0.10" | "v0.26"): Promise<void> {
  const pub = new SimKvEventPublisher({
    endpoint: "tcp://127.0.0.1:*",
    topic: "kv@10.0.0.1@Qwen3-32B",
    clock: new LiveClock(1),
    replayEndpoint: "tcp://127.0.0.1:*",
    replayLayout: layout,
    bufferSteps: BATCHES,
  });
  await pub.start();
  for (let i = 0; i < BATCHES; i++) pub.publish(batch(i));
  // The publisher's own PUB sends (to nobody) share this process: let them finish before the clock starts.
  while (pub.sent < BATCHES) await new Promise((r) => setTimeout(r, 5));
  const metrics = new Metrics();
  const index = new BlockIndex({ maxEntries: 16_000_000, mediumWeights: { GPU: 1 } });
  const ingest = new KvEventIngest({
    index,
    logger: createLogger({ level: "silent" }),
    recorder: metrics.kvEvents,
    hash: { hashAlgo: "sha256_cbor_64bit", hashSeed: "42", blockSize: BS },
    // kvpick's defaults (a lost tail is noticed after replayTimeoutMs), no cooldown.
    replay: {
      endpoint: () => pub.replayEndpoint,
      timeoutMs: KV.replayTimeoutMs,
      cooldownMs: 0,
      maxConcurrent: KV.maxConcurrentReplays,
      maxHeldBatches: KV.maxHeldBatches,
    },
  });
  const stall = monitorEventLoopDelay({ resolution: 1 });
  stall.enable();
  const t0 = performance.now();
  // A first live batch at the ring's end: kvpick joined late, so it replays the whole ring from seq 0.
  ingest.handleMessage([
    Buffer.from(pub.topic),
    seqFrame(BATCHES),
    pub.encoder.encode({ ts: 0, events: [] }),
  ]);
  while ((ingest.podStates()[0]?.replays ?? 1) > 0) await new Promise((r) => setTimeout(r, 1));
  const s = (performance.now() - t0) / 1000;
  stall.disable();
  const blocks = BATCHES * EVENTS * BLOCKS;
  const entries = index.stats().entries;
  if (entries !== blocks) throw new Error(`replayed ${entries} of ${blocks} blocks`);
  const replays = (await metrics.kvEvents.kvReplays.get()).values;
  const resumes = replays.find((v) => v.labels.result === "truncated")?.value ?? 0;
  const exact = ingest.podStates()[0]?.accuracy;
  console.log(
    `replay ${fmt(BATCHES, 0)} batches (${layout} layout): ${fmt(s, 3)} s, ${fmt(BATCHES / s, 0)} batches/s, ` +
      `${fmt(blocks / s / 1e6)} M block events/s; longest event-loop stall ${fmt(stall.max / 1e6, 1)} ms; ` +
      `${resumes} resume(s); accuracy ${exact}`,
  );
  rows.push([
    `${layout} (${layout === "v0.10" ? "no topic" : "topic"})`,
    `${fmt(s, 2)} s`,
    fmt(BATCHES / s, 0),
    `${fmt(blocks / s / 1e6)} M`,
    String(resumes),
    `${fmt(stall.max / 1e6, 1)} ms`,
  ]);
  await ingest.close();
  await pub.close();
}

/** The same measurement on an idle loop: what the machine itself adds (GC, other processes). */
async function control(ms: number): Promise<number> {
  const stall = monitorEventLoopDelay({ resolution: 1 });
  stall.enable();
  const end = Date.now() + ms;
  while (Date.now() < end) await new Promise((r) => setTimeout(r, 1));
  stall.disable();
  console.log(`control: idle loop for ${ms} ms, longest event-loop stall ${fmt(stall.max / 1e6, 1)} ms`);
  return stall.max / 1e6;
}

const idle = await control(1500);
for (const layout of ["v0.10", "v0.26"] as const) await run(layout);
result.tables.push({
  caption: `A simulated vLLM replay ROUTER holding a full ring (\`buffer_steps\` ${BATCHES.toLocaleString("en-US")} batches of ${EVENTS} \`BlockStored\` × ${BLOCKS} blocks, random hashes) → kvpick's DEALER → decode → index, loopback, one process; every block of the ring checked in the index afterwards.`,
  columns: [
    "reply layout",
    "whole ring",
    "batches/s",
    "block events/s",
    "resumes",
    "longest event-loop stall",
  ],
  rows,
});
result.notes.push(
  `Idle control (the same stall measurement on an idle loop, before the runs): ${fmt(idle, 1)} ms — what the machine itself adds.`,
  `kvpick's replay defaults: replayTimeoutMs ${KV.replayTimeoutMs} (a reply whose tail, end marker included, was dropped is noticed after that long), maxConcurrentReplays ${KV.maxConcurrentReplays}, maxHeldBatches ${KV.maxHeldBatches}.`,
  "Resumes: the ROUTER drops replies past its send high-water mark (1,000, vLLM's default), mid-reply as well as the tail; kvpick stops at the first missing seq and asks again from there.",
  "Shared 2-core machine: the load average above is recorded; compare rows of one run as ratios.",
);
console.log(`wrote ${result.write()}`);
