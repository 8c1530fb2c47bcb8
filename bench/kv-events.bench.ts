// KV-event benchmarks on one core: decode only (kvpick's reader vs @msgpack/msgpack on the same bytes),
// and the whole message path (frames → decode → seq tracking → hash check → index → metrics).
// Payloads look like vLLM's: batches of 4 BlockStored events × 16 blocks, block size 64, token ids from a
// 151k vocabulary (Qwen3), one event in four starting at token 0 (so it is hash-checked).
// Then kvEvents.keys: chained events (each event's parent = the previous event's last block, one root per
// batch, real hashes of the tokens) through the whole path with engine keys, auto on the reference
// deployment (hashes agree: no map) and token keys (kvpick's chain over token_ids + the per-pod map).
// Run: node dist/bench/kv-events.bench.js
import { decode } from "@msgpack/msgpack";
import { encodeBatch, type EventSpec, type Layout, seqFrame } from "../test/support/kv-event-publisher.js";
import { decodeBatch } from "../src/kv-events/decode.js";
import type { HashAlgo, KeyMode } from "../src/config/schema.js";
import { KvEventIngest } from "../src/kv-events/ingest.js";
import { BlockHasher, type HashScheme } from "../src/kv-index/block-hash.js";
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
      recorder: new Metrics().kvEvents,
      hash: { hashAlgo: "sha256_cbor_64bit", hashSeed: "42", blockSize: BS },
    });
    const topic = Buffer.from("kv@10.0.0.1:8000@Qwen3-32B");
    for (let i = 0; i < ps.length; i++) ingest.handleMessage([topic, seqFrame(i), ps[i]!]);
    sink += index.stats().entries;
  };
  time(`handleMessage ${layout} (decode + seq + hash check + apply + metrics)`, blocks, bytes, run);
  if (sink < 0) console.log(sink);
}

/** Batches of EVENTS_PER_BATCH chained events (one chain per batch) hashed by a pod's engine. */
function chainedPayloads(count: number, engine: BlockHasher): Uint8Array[] {
  const out: Uint8Array[] = [];
  const perBatch = EVENTS_PER_BATCH * BLOCKS_PER_EVENT;
  for (let b = 0; b < count; b++) {
    const tokens = Array.from({ length: perBatch * BS }, () => rnd32() % 151_000);
    const hashes = [...engine.hash(tokens)];
    const events: EventSpec[] = [];
    for (let e = 0; e < EVENTS_PER_BATCH; e++) {
      const from = e * BLOCKS_PER_EVENT;
      events.push({
        type: "BlockStored",
        hashes: hashes.slice(from, from + BLOCKS_PER_EVENT),
        parent: e === 0 ? null : hashes[from - 1]!,
        tokenIds: tokens.slice(from * BS, (from + BLOCKS_PER_EVENT) * BS),
        blockSize: BS,
      });
    }
    out.push(encodeBatch(events, { layout: "v0.10.2", ts: 1753315200.25 + b }));
  }
  return out;
}

const NC = 2000;
const chainedBlocks = NC * EVENTS_PER_BATCH * BLOCKS_PER_EVENT;
const cases: [string, HashScheme, string, { hashAlgo: HashAlgo; hashSeed: string | null; keys: KeyMode }][] =
  [
    [
      "keys engine, seed 42 sha256_cbor_64bit (today's path)",
      "sha256_cbor_64bit",
      "42",
      { hashAlgo: "sha256_cbor_64bit", hashSeed: "42", keys: "engine" },
    ],
    [
      "keys auto, reference deployment (seed 42, sha256_cbor_64bit: hashes agree, no map)",
      "sha256_cbor_64bit",
      "42",
      { hashAlgo: "sha256_cbor_64bit", hashSeed: "42", keys: "auto" },
    ],
    [
      "keys tokens, no seed (default scheme, 64-bit state)",
      "sha256_cbor",
      "1234",
      { hashAlgo: "sha256_cbor", hashSeed: null, keys: "tokens" },
    ],
    [
      "keys auto, pods sha256_cbor seed 1234, kvpick seed 42 (switches to tokens, 32-byte state)",
      "sha256_cbor",
      "1234",
      { hashAlgo: "sha256_cbor", hashSeed: "42", keys: "auto" },
    ],
    [
      "keys tokens, xxhash_cbor seed 42 (16-byte state)",
      "xxhash_cbor",
      "1234",
      { hashAlgo: "xxhash_cbor", hashSeed: "42", keys: "tokens" },
    ],
  ];
for (const [label, scheme, seed, hash] of cases) {
  const ps = chainedPayloads(NC, new BlockHasher({ scheme, hashSeed: seed, blockSize: BS }));
  const bytes = ps.reduce((n, p) => n + p.length, 0);
  let sink = 0;
  time(`handleMessage chained, ${label}`, chainedBlocks, bytes, () => {
    const index = new BlockIndex({ maxEntries: 16_000_000, mediumWeights: { GPU: 1, CPU: 0.8 } });
    const ingest = new KvEventIngest({
      index,
      logger: createLogger({ level: "silent" }),
      recorder: new Metrics().kvEvents,
      hash: { ...hash, blockSize: BS },
    });
    const topic = Buffer.from("kv@10.0.0.1:8000@Qwen3-32B");
    for (let i = 0; i < ps.length; i++) ingest.handleMessage([topic, seqFrame(i), ps[i]!]);
    sink += index.stats().entries;
    if (index.stats().entries !== chainedBlocks)
      throw new Error(`${label}: ${index.stats().entries} entries`);
  });
  if (sink < 0) console.log(sink);
}
