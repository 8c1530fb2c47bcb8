// KV-event replay on one core, real sockets: a simulated vLLM replay ROUTER holding a full ring
// (buffer_steps = 10,000 batches of 4 BlockStored × 16 blocks, like kv-events.bench.ts) → kvpick's DEALER →
// decode → apply. Reports recovery throughput and the longest event-loop stall while it runs (replies are
// applied in slices so requests keep being served).
// Run: node dist/bench/kv-replay.bench.js
import { monitorEventLoopDelay } from "node:perf_hooks";
import { seqFrame } from "../test/support/kv-event-publisher.js";
import { KvEventIngest } from "../src/kv-events/ingest.js";
import { BlockIndex } from "../src/kv-index/block-index.js";
import { createLogger } from "../src/observability/logger.js";
import { Metrics } from "../src/observability/metrics.js";
import { LiveClock } from "../src/sim/clock.js";
import type { SimEventBatch } from "../src/sim/kv-event.js";
import { SimKvEventPublisher } from "../src/sim/kv-event-publisher.js";
import { fmt, hash64From, xorshift32 } from "./support/bench-random.js";

const rnd32 = xorshift32(0x2545f491);
const hash64 = hash64From(rnd32);

const BATCHES = 10_000;
const EVENTS = 4;
const BLOCKS = 16;
const BS = 64;

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
  const index = new BlockIndex({ maxEntries: 16_000_000, mediumWeights: { GPU: 1 } });
  const ingest = new KvEventIngest({
    index,
    logger: createLogger({ level: "silent" }),
    recorder: new Metrics().kvEvents,
    hash: { hashAlgo: "sha256_cbor_64bit", hashSeed: "42", blockSize: BS },
    replay: {
      endpoint: () => pub.replayEndpoint,
      timeoutMs: 10_000,
      cooldownMs: 0,
      maxConcurrent: 8,
      maxHeldBatches: 10_000,
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
  console.log(
    `replay ${fmt(BATCHES, 0)} batches (${layout} layout): ${fmt(s, 3)} s, ${fmt(BATCHES / s, 0)} batches/s, ` +
      `${fmt(blocks / s / 1e6)} M block events/s; longest event-loop stall ${fmt(stall.max / 1e6, 1)} ms`,
  );
  await ingest.close();
  await pub.close();
}

/** The same measurement on an idle loop: what the machine itself adds (GC, other processes). */
async function control(ms: number): Promise<void> {
  const stall = monitorEventLoopDelay({ resolution: 1 });
  stall.enable();
  const end = Date.now() + ms;
  while (Date.now() < end) await new Promise((r) => setTimeout(r, 1));
  stall.disable();
  console.log(`control: idle loop for ${ms} ms, longest event-loop stall ${fmt(stall.max / 1e6, 1)} ms`);
}

await control(1500);
for (const layout of ["v0.10", "v0.26"] as const) await run(layout);
