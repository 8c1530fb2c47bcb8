// KV-event benchmarks on one core: decode only (kvpick's reader vs @msgpack/msgpack on the same bytes),
// and the whole message path (frames → decode → seq tracking → hash check → index → metrics).
// Payloads look like vLLM's: batches of 4 BlockStored events × 16 blocks, block size 64, token ids from a
// 151k vocabulary (Qwen3), one event in four starting at token 0 (so it is hash-checked).
// Then kvEvents.keys: chained events (each event's parent = the previous event's last block, one root per
// batch, real hashes of the tokens) through the whole path with engine keys, auto on the reference
// deployment (hashes agree: no map) and token keys (a chain over token_ids + the per-pod map): kvpick's own
// chain (kvpick_mmh3_64: keys tokens, or auto without a seed) and vLLM's sha256 recipes (auto with a seed
// whose pods differ: the request scheme is then the configured one), with each row's ratio to engine keys.
// Then the request side: the chain of a warm 8k-token prompt with each scheme; last, apply only (no decode).
// Run: node dist/bench/kv-events.bench.js
import { decode } from "@msgpack/msgpack";
import { encodeBatch, type EventSpec, type Layout, seqFrame } from "../test/support/kv-event-publisher.js";
import { blockStoredEvent, decodeBatch } from "../src/kv-events/decode.js";
import type { HashAlgo, KeyMode } from "../src/config/schema.js";
import type { BlockStoredEvent } from "../src/kv-events/decode.js";
import { KvEventIngest } from "../src/kv-events/ingest.js";
import { TokenKeys } from "../src/kv-events/token-keys.js";
import { BlockHasher, type HashScheme, type KeyScheme } from "../src/kv-index/block-hash.js";
import { BlockIndex } from "../src/kv-index/block-index.js";
import { LearntBlockSize } from "../src/kv-index/learnt-block-size.js";
import { RequestHasher } from "../src/kv-index/request-key-scheme.js";
import { createLogger } from "../src/observability/logger.js";
import { Metrics } from "../src/observability/metrics.js";
import { fmt, hash64From, xorshift32 } from "./support/bench-random.js";
import { startResult } from "./support/results.js";

const rnd32 = xorshift32(0x2545f491);
const hash64 = hash64From(rnd32);

const BLOCKS_PER_EVENT = 16;
const EVENTS_PER_BATCH = 4;
const BS = 64;
const result = startResult("kv-events", "KV events", "node --expose-gc dist/bench/kv-events.bench.js");
/** Rows of the first table (random hashes) and of the chained-path table. */
const decodeRows: string[][] = [];
const chainedRows: string[][] = [];

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

let lastRow: string[] = [];
function time(label: string, blocks: number, bytes: number, fn: () => void): number {
  fn(); // warm-up pass (JIT)
  const t0 = performance.now();
  fn();
  const s = (performance.now() - t0) / 1000;
  console.log(`${label}: ${fmt(blocks / s / 1e6)} M block events/s, ${fmt(bytes / s / 1e6)} MB/s`);
  lastRow = [label, `${fmt(blocks / s / 1e6)} M`, `${fmt(bytes / s / 1e6)}`];
  return blocks / s;
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
  decodeRows.push(lastRow);
  time(`decode ${layout}, @msgpack/msgpack useBigInt64 (comparison)`, blocks, bytes, () => {
    for (const p of ps) sink += (decode(p, { useBigInt64: true }) as unknown[]).length;
  });
  decodeRows.push(lastRow);

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
  decodeRows.push(lastRow);
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
      "keys tokens, no seed (kvpick_mmh3_64 chain)",
      "sha256_cbor",
      "1234",
      { hashAlgo: "sha256_cbor", hashSeed: null, keys: "tokens" },
    ],
    [
      "keys auto, no seed, pods xxhash_cbor (kvpick_mmh3_64 chain from the start)",
      "xxhash_cbor",
      "1234",
      { hashAlgo: "xxhash_cbor", hashSeed: null, keys: "auto" },
    ],
    [
      "keys auto, pods sha256_cbor_64bit seed 1234, kvpick seed 42 (switches: old sha256 token chain, 8-byte state)",
      "sha256_cbor_64bit",
      "1234",
      { hashAlgo: "sha256_cbor_64bit", hashSeed: "42", keys: "auto" },
    ],
    [
      "keys auto, pods sha256_cbor seed 1234, kvpick seed 42 (switches: sha256_cbor chain, 32-byte state)",
      "sha256_cbor",
      "1234",
      { hashAlgo: "sha256_cbor", hashSeed: "42", keys: "auto" },
    ],
  ];
let engineRate = 0;
for (const [label, scheme, seed, hash] of cases) {
  const ps = chainedPayloads(NC, new BlockHasher({ scheme, hashSeed: seed, blockSize: BS }));
  const bytes = ps.reduce((n, p) => n + p.length, 0);
  let sink = 0;
  const rate = time(`handleMessage chained, ${label}`, chainedBlocks, bytes, () => {
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
  if (engineRate === 0) engineRate = rate;
  console.log(`  ratio to keys engine: ${fmt(rate / engineRate)}`);
  chainedRows.push([label, lastRow[1]!, fmt(rate / engineRate)]);
  if (sink < 0) console.log(sink);
}

// Request side: a warm 8k-token prompt (128 blocks of 64) hashed again, as a conversation's next turn or a
// shared system prompt is: vLLM's schemes with the memo the request path uses (tokenizer.hashMemoBlocks
// default) and without, and kvpick's chain (no memo: its hash costs what the memo's fingerprint does).
const prompt = Uint32Array.from({ length: 8192 }, () => rnd32() % 151_000);
const requestCases: [string, KeyScheme, number][] = [
  ["sha256_cbor_64bit, memo (warm)", "sha256_cbor_64bit", 65_536],
  ["sha256_cbor_64bit, no memo", "sha256_cbor_64bit", 0],
  ["sha256_cbor, memo (warm)", "sha256_cbor", 65_536],
  ["kvpick_mmh3_64 (token keys)", "kvpick_mmh3_64", 65_536],
];
const requestRows: string[][] = [];
for (const [label, scheme, memoBlocks] of requestCases) {
  const h = new BlockHasher({ scheme, hashSeed: "42", blockSize: BS, memoBlocks });
  let sink = 0n;
  for (let i = 0; i < 50; i++) sink ^= h.hash(prompt)[127]!; // warm: JIT and memo
  const runs = 2000;
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) sink ^= h.hash(prompt)[127]!;
  const us = ((performance.now() - t0) * 1000) / runs;
  console.log(`request chain, warm 8,192 tokens, ${label}: ${fmt(us)} µs`);
  requestRows.push([label, fmt(us)]);
  if (sink === 1n) console.log(sink);
}

// Apply only (no decode): a BlockStored's keys + the pod's map + the index store, against the index store
// alone on the same events (engine keys' apply step). 16-block events of 64 tokens, chained 64 at a time,
// engine hashes random; 4 alternating rounds, the first one warming the JIT.
const log = createLogger({ level: "silent" });
const applyEvents: BlockStoredEvent[] = [];
{
  let parent: bigint | null = null;
  const toks = Uint32Array.from({ length: BLOCKS_PER_EVENT * BS }, () => rnd32() % 151_000);
  for (let e = 0; e < 20_000; e++) {
    const blockHashes = new BigUint64Array(Uint32Array.from({ length: 2 * BLOCKS_PER_EVENT }, rnd32).buffer);
    applyEvents.push(
      blockStoredEvent({
        blockHashes,
        parentBlockHash: e % 64 === 0 ? null : parent,
        tokenIds: toks.map((t) => (t + e) % 151_000),
        blockSize: BS,
        medium: "GPU",
        groupIdx: 0,
      }),
    );
    parent = blockHashes[BLOCKS_PER_EVENT - 1]!;
  }
}
function applyRate(scheme: KeyScheme | null): number {
  const index = new BlockIndex({ maxEntries: 16_000_000, mediumWeights: { GPU: 1, CPU: 0.8 } });
  const keys =
    scheme === null
      ? null
      : new TokenKeys({
          mode: "tokens",
          hasher: new RequestHasher(
            { scheme, hashSeed: "kvpick-token-keys", comparable: false },
            new LearntBlockSize(BS, log),
          ),
          comparable: false,
          index,
          logger: log,
          metrics: new Metrics().kvEvents.tokenKeys,
        });
  const t0 = performance.now();
  for (const ev of applyEvents) {
    if (keys === null) {
      const w = new Uint32Array(ev.blockHashes.buffer, ev.blockHashes.byteOffset, 2 * BLOCKS_PER_EVENT);
      index.store("10.0.0.1:8000", "GPU", w, BLOCKS_PER_EVENT);
    } else {
      const k = keys.stored("10.0.0.1:8000", ev)!;
      index.store("10.0.0.1:8000", "GPU", k.words, k.count);
    }
  }
  return (applyEvents.length * BLOCKS_PER_EVENT) / ((performance.now() - t0) / 1000);
}
const applyRows: [string, KeyScheme | null][] = [
  ["index store alone (engine keys' apply)", null],
  ["token keys, kvpick_mmh3_64 chain + map + store", "kvpick_mmh3_64"],
  ["token keys, sha256_cbor_64bit chain + map + store (old default)", "sha256_cbor_64bit"],
];
const applyRates = applyRows.map(() => [] as number[]);
for (let round = 0; round < 4; round++)
  for (let i = 0; i < applyRows.length; i++) applyRates[i]!.push(applyRate(applyRows[i]![1]));
const best = applyRates.map((r) => Math.max(...r.slice(1)));
for (let i = 0; i < applyRows.length; i++)
  console.log(
    `apply only, ${applyRows[i]![0]}: ${fmt(best[i]! / 1e6)} M block events/s (best of 3 warm rounds), ` +
      `ratio to store alone ${fmt(best[i]! / best[0]!)}`,
  );
result.tables.push(
  {
    caption: `Random hashes, ${N.toLocaleString("en-US")} batches of ${EVENTS_PER_BATCH} \`BlockStored\` × ${BLOCKS_PER_EVENT} blocks × ${BS} token ids (the token ids dominate decoding), one core:`,
    columns: ["path", "block events/s", "MB/s"],
    rows: decodeRows,
  },
  {
    caption: `\`kvEvents.keys\`: chained real hashes (${NC.toLocaleString("en-US")} batches, one chain per batch), whole message path (decode + seq + hash check + apply + metrics):`,
    columns: ["chained path", "block events/s", "ratio to keys engine"],
    rows: chainedRows,
  },
  {
    caption: "Request side: the chain of a warm 8,192-token prompt (128 blocks), mean of 2,000:",
    columns: ["scheme", "µs"],
    rows: requestRows,
  },
  {
    caption: "Apply only (no decode), 20,000 16-block events; best of 3 warm rounds after one warm-up:",
    columns: ["apply", "block events/s", "ratio to store alone"],
    rows: applyRows.map((r, i) => [r[0], `${fmt(best[i]! / 1e6)} M`, fmt(best[i]! / best[0]!)]),
  },
);
result.notes.push(
  "Targets: issue 3 / 16 block-event apply ≥ 1 M/s (the whole message path is decode-bound: compare it with the decode rows); issue 12 token-key apply ≥ 1 M/s (the apply-only table).",
  "Shared 2-core machine: the load average above is recorded; compare rows of one run as ratios, not across runs.",
);
console.log(`wrote ${result.write()}`);
