// KV-event benchmarks on one core: decode only (kvpick's reader vs @msgpack/msgpack on the same bytes),
// and the whole message path (frames → decode → seq tracking → hash check → index → metrics).
// Payloads look like vLLM's: batches of 4 BlockStored events × 16 blocks, block size 64, token ids from a
// 151k vocabulary (Qwen3), one event in four starting at token 0 (so it is hash-checked).
// Run: node dist/bench/kv-events.bench.js
import { decode } from "@msgpack/msgpack";
import { encodeBatch, type EventSpec, type Layout, seqFrame } from "../test/support/kv-event-publisher.js";
import { decodeBatch } from "../src/kv-events/decode.js";
import { KvEventIngest } from "../src/kv-events/ingest.js";
import { BlockIndex } from "../src/kv-index/block-index.js";
import { createLogger } from "../src/observability/logger.js";
import { Metrics } from "../src/observability/metrics.js";
import { fmt, hash64From, xorshift32 } from "./support/bench-random.js";

const rnd32 = xorshift32(0x2545f491);
const hash64 = hash64From(rnd32);

const BLOCKS_PER_EVENT = 16;
const EVENTS_PER_BATCH = 4;
const BS = 64;

function payloads(count: number, layout: Layout): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let b = 0; b < count; b++) {
    const events: EventSpec[] = [];
    for (let e = 0; e < EVENTS_PER_BATCH; e++) {
      events.push({
        type: "BlockStored",
        hashes: Array.from({ length: BLOCKS_PER_EVENT }, hash64),
        parent: e === 0 ? null : hash64(),
        tokenIds: Array.from({ length: BLOCKS_PER_EVENT * BS }, () => rnd32() % 151_000),
        blockSize: BS,
      });
    }
    out.push(encodeBatch(events, { layout, ts: 1753315200.25 + b }));
  }
  return out;
}

function time(label: string, blocks: number, bytes: number, fn: () => void): void {
  fn(); // warm-up pass (JIT)
  const t0 = performance.now();
  fn();
  const s = (performance.now() - t0) / 1000;
  console.log(`${label}: ${fmt(blocks / s / 1e6)} M block events/s, ${fmt(bytes / s / 1e6)} MB/s`);
}

const N = 5000;
for (const layout of ["v0.10.0", "map"] as const) {
  const ps = payloads(N, layout);
  const blocks = N * EVENTS_PER_BATCH * BLOCKS_PER_EVENT;
  const bytes = ps.reduce((n, p) => n + p.length, 0);
  let sink = 0;
  time(`decode ${layout}, kvpick reader`, blocks, bytes, () => {
    for (const p of ps) sink += decodeBatch(p).events.length;
  });
  time(`decode ${layout}, @msgpack/msgpack useBigInt64 (comparison)`, blocks, bytes, () => {
    for (const p of ps) sink += (decode(p, { useBigInt64: true }) as unknown[]).length;
  });

  // Whole path; a fresh index per pass, so both passes apply the same amount of new blocks.
  const run = () => {
    const index = new BlockIndex({ maxEntries: 16_000_000, mediumWeights: { GPU: 1, CPU: 0.8 } });
    const ingest = new KvEventIngest({
      index,
      logger: createLogger({ level: "silent" }),
      metrics: new Metrics(),
      hash: { hashAlgo: "sha256_cbor_64bit", hashSeed: "42", blockSize: BS },
    });
    const topic = Buffer.from("kv@10.0.0.1:8000@Qwen3-32B");
    for (let i = 0; i < ps.length; i++) ingest.handleMessage([topic, seqFrame(i), ps[i]!]);
    sink += index.stats().entries;
  };
  time(`handleMessage ${layout} (decode + seq + hash check + apply + metrics)`, blocks, bytes, run);
  if (sink < 0) console.log(sink);
}
