import type { Counter, Gauge } from "prom-client";
import { describe, expect, it } from "vitest";
import { loadVector } from "../../test/support/golden.js";
import { encodeBatch, type EventSpec, seqFrame } from "../../test/support/kv-event-publisher.js";
import type { HashAlgo } from "../config/schema.js";
import { BlockIndex } from "../kv-index/block-index.js";
import { createLogger } from "../observability/logger.js";
import { Registry } from "prom-client";
import { KvEventsMetrics } from "../observability/kv-events-metrics.js";
import { KvEventIngest, parseTopic } from "./ingest.js";

interface Golden {
  layouts: { layout: string; note: string; topic: string; messages: { frames_hex: string[] }[] }[];
}
const golden = loadVector<Golden>("vllm-kv-event-frames.json");
const hexFrames = (m: { frames_hex: string[] }) => m.frames_hex.map((h) => Buffer.from(h, "hex"));

// Tokens 0..199, block size 64, seed "42" (shared/reference/vllm-kv-events.md §2.6).
const V0100 = [334609804919786575n, 11752632418425793902n, 9951355432383428481n];
const V0102 = [9653463297601983615n, 3004255952922927925n, 11953772813257133055n];
const TOKENS = Array.from({ length: 200 }, (_, i) => i);

function setup(
  hash: { hashAlgo?: HashAlgo; hashSeed?: string | null; blockSize?: number } = {},
  admit?: (pod: string) => boolean,
) {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: "debug",
    destination: { write: (s: string) => lines.push(JSON.parse(s)) },
  });
  const registry = new Registry();
  const metrics = new KvEventsMetrics(registry);
  const index = new BlockIndex({ maxEntries: 1000, mediumWeights: { GPU: 1, CPU: 0.8 } });
  const ingest = new KvEventIngest({
    index,
    logger,
    recorder: metrics,
    hash: {
      hashAlgo: hash.hashAlgo ?? "sha256_cbor_64bit",
      hashSeed: hash.hashSeed === undefined ? "42" : hash.hashSeed,
      blockSize: hash.blockSize ?? 64,
    },
    ...(admit === undefined ? {} : { admit }),
  });
  return { lines, metrics, registry, index, ingest };
}

async function value(
  metric: Counter<string> | Gauge<string>,
  labels: Record<string, string>,
): Promise<number> {
  const got = await metric.get();
  const hit = got.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x));
  return hit?.value ?? 0;
}

const msg = (
  topic: string,
  seq: number,
  events: EventSpec[],
  opts: Parameters<typeof encodeBatch>[1] = {},
) => [Buffer.from(topic), seqFrame(seq), encodeBatch(events, opts)];
const match = (index: BlockIndex, chain: bigint[], pods: string[]) => [
  ...index.matchPrefix(BigUint64Array.from(chain), pods).blocks,
];

describe("parseTopic", () => {
  it("reads kv@<pod>@<model>, with ip:port pods and models containing @", () => {
    expect(parseTopic("kv@10.0.0.1@Qwen3-32B")).toEqual({ pod: "10.0.0.1", model: "Qwen3-32B" });
    expect(parseTopic("kv@10.0.0.1:8000@org/m@v2")).toEqual({ pod: "10.0.0.1:8000", model: "org/m@v2" });
    expect(parseTopic("kv")).toBeNull();
    expect(parseTopic("kv@@m")).toBeNull();
  });
});

describe("KvEventIngest", () => {
  const cases: [number, HashAlgo, bigint[]][] = [
    [0, "sha256_cbor_64bit", V0100],
    [1, "sha256_cbor", V0102],
    [2, "sha256_cbor", V0102],
    [3, "sha256_cbor", V0102],
    [4, "sha256_cbor", V0102],
  ];
  for (const [i, algo, hashes] of cases) {
    const layout = golden.layouts[i]!;
    it(`applies the golden ${layout.layout} stream (${layout.note}) with matching hash checks`, async () => {
      const { ingest, index, metrics } = setup({ hashAlgo: algo });
      const [stored, removed, cleared] = layout.messages;
      ingest.handleMessage(hexFrames(stored!));
      expect(match(index, hashes, ["10.0.0.1"])).toEqual([3]);
      ingest.handleMessage(hexFrames(removed!));
      expect(match(index, hashes, ["10.0.0.1"])).toEqual([2]);
      ingest.handleMessage(hexFrames(cleared!));
      expect(index.stats()).toEqual({ entries: 0, blocks: 0, pods: 0, evictions: 0 });
      const [state] = ingest.podStates();
      expect(state).toMatchObject({
        podId: "10.0.0.1",
        model: "Qwen3-32B",
        stale: false,
        hashChecks: 1,
        hashMismatches: 0,
      });
      expect(state!.publishers).toEqual([{ rank: 0, lastSeq: "2" }]);
      expect(await value(metrics.kvEventsReceived, { pod: "10.0.0.1" })).toBe(3);
      expect(await value(metrics.kvEventsApplied, { pod: "10.0.0.1", type: "BlockStored" })).toBe(2);
      expect(await value(metrics.kvSeqGaps, { pod: "10.0.0.1" })).toBe(0);
    });
  }

  it("counts a hash-configuration mismatch per pod and warns once per pod", async () => {
    const { ingest, metrics, lines } = setup({ hashSeed: "0" });
    for (const pod of ["a", "a", "b"]) {
      ingest.handleMessage(
        msg(`kv@${pod}@m`, 0, [
          { type: "BlockStored", hashes: V0100.slice(0, 1), tokenIds: TOKENS.slice(0, 64) },
        ]),
      );
    }
    expect(await value(metrics.kvHashMismatches, { pod: "a" })).toBe(2);
    const warns = lines.filter((l) => String(l.msg).includes("PYTHONHASHSEED"));
    expect(warns.map((w) => w.pod)).toEqual(["a", "b"]);
  });

  it("warns once when a pod's block size differs, and skips the check without a seed", () => {
    const { ingest, lines } = setup({ hashSeed: null, blockSize: 16 });
    const ev: EventSpec = { type: "BlockStored", hashes: [1n], tokenIds: TOKENS.slice(0, 64), blockSize: 64 };
    ingest.handleMessage(msg("kv@a@m", 0, [ev, ev]));
    ingest.handleMessage(msg("kv@a@m", 1, [{ ...ev, blockSize: 16, tokenIds: TOKENS.slice(0, 16) }]));
    expect(lines.filter((l) => String(l.msg).includes("--block-size"))).toHaveLength(1);
    expect(lines.filter((l) => String(l.msg).includes("hashSeed is not set"))).toHaveLength(1);
  });

  it("tracks sequence numbers per pod and DP rank: gaps mark stale, a backwards seq clears the pod", async () => {
    const { ingest, index, metrics } = setup();
    const store = (h: bigint): EventSpec[] => [{ type: "BlockStored", hashes: [h], parent: 99n }];
    ingest.handleMessage(msg("kv@p@m", 5, store(1n))); // first seen > 0: slow joiner, not a gap
    ingest.handleMessage(msg("kv@p@m", 0, store(2n), { rank: 1 })); // rank 1 has its own counter
    ingest.handleMessage(msg("kv@p@m", 6, store(3n)));
    expect(await value(metrics.kvSeqGaps, { pod: "p" })).toBe(0);
    ingest.handleMessage(msg("kv@p@m", 9, store(4n)));
    expect(await value(metrics.kvSeqGaps, { pod: "p" })).toBe(1);
    expect(await value(metrics.kvSeqMissedBatches, { pod: "p" })).toBe(2);
    expect(await value(metrics.kvPodStale, { pod: "p" })).toBe(1);
    expect(index.stats().entries).toBe(4);
    ingest.handleMessage(msg("kv@p@m", 0, store(7n))); // restart: forget everything, then apply
    expect(await value(metrics.kvPublisherRestarts, { pod: "p" })).toBe(1);
    expect(await value(metrics.kvPodStale, { pod: "p" })).toBe(0);
    expect(match(index, [7n], ["p"])).toEqual([1]);
    expect(index.stats().entries).toBe(1);
    ingest.handleMessage(msg("kv@p@m", 1, [{ type: "BlockStored", hashes: [8n], parent: 7n }]));
    expect(match(index, [7n, 8n], ["p"])).toEqual([2]);
  });

  it("drops malformed messages, counting them by reason, leaving the index unchanged", async () => {
    const { ingest, index, metrics, lines } = setup();
    ingest.handleMessage(msg("kv@p@m", 0, [{ type: "BlockStored", hashes: [1n, 2n] }]));
    const before = index.stats();
    const good = msg("kv@p@m", 1, [{ type: "AllBlocksCleared" }]);
    const bad: [string, Uint8Array[]][] = [
      ["frames", good.slice(0, 2)],
      ["frames", [...good, Buffer.from("x")]],
      ["seq", [good[0]!, Buffer.alloc(7), good[2]!]],
      ["payload", [good[0]!, seqFrame(2), good[2]!.subarray(0, 5)]],
      ["payload", [good[0]!, seqFrame(3), Buffer.from([0xc1])]],
    ];
    for (const [, frames] of bad) ingest.handleMessage(frames);
    ingest.handleMessage([Buffer.from("no-pod-here"), seqFrame(0), good[2]!]);
    expect(index.stats()).toEqual(before);
    expect(await value(metrics.kvEventsMalformed, { pod: "p", reason: "frames" })).toBe(2);
    expect(await value(metrics.kvEventsMalformed, { pod: "p", reason: "seq" })).toBe(1);
    expect(await value(metrics.kvEventsMalformed, { pod: "p", reason: "payload" })).toBe(2);
    expect(await value(metrics.kvEventsMalformed, { pod: "unknown", reason: "topic" })).toBe(1);
    // Rate-limited: one line per (reason, pod) per interval.
    expect(lines.filter((l) => l.msg === "kv-event message dropped")).toHaveLength(4);
  });

  it("lets the connect-mode pod win over the topic and keeps GPU and CPU copies apart", () => {
    const { ingest, index } = setup();
    ingest.handleMessage(
      msg(
        "kv@10.9.9.9@m",
        0,
        [
          { type: "BlockStored", hashes: [1n, 2n], medium: "GPU" },
          { type: "BlockStored", hashes: [1n, 2n], medium: "CPU", parent: null },
          { type: "BlockRemoved", hashes: [2n], medium: "GPU" },
        ],
        { layout: "v0.10.2" },
      ),
      "10.0.0.7:8000",
    );
    expect(index.hasPod("10.9.9.9")).toBe(false);
    const r = index.matchPrefix(BigUint64Array.from([1n, 2n]), ["10.0.0.7:8000"]);
    expect([...r.blocks, ...r.weighted]).toEqual([2, 1.8]);
    ingest.forgetPod("10.0.0.7:8000");
    expect(index.hasPod("10.0.0.7:8000")).toBe(false);
    expect(ingest.podStates()).toEqual([]);
  });

  it("indexes only full-attention groups of hybrid models", async () => {
    const { ingest, index, metrics } = setup();
    ingest.handleMessage(
      msg(
        "kv@p@m",
        0,
        [
          { type: "BlockStored", hashes: [1n], groupIdx: 0, specKind: "sliding_window" },
          { type: "BlockStored", hashes: [2n], groupIdx: 1, specKind: "full_attention" },
          { type: "BlockStored", hashes: [3n], groupIdx: 2, specKind: null },
        ],
        { layout: "spec_kind" },
      ),
    );
    expect(match(index, [1n], ["p"])).toEqual([0]);
    expect(match(index, [2n], ["p"])).toEqual([1]);
    expect(match(index, [3n], ["p"])).toEqual([0]);
    ingest.handleMessage(
      msg("kv@p@m", 1, [{ type: "BlockRemoved", hashes: [2n], groupIdx: 1 }], { layout: "spec_kind" }),
    );
    expect(index.stats().entries).toBe(0);
    expect(await value(metrics.kvEventsUnknown, { pod: "p", kind: "group" })).toBe(2);
  });

  it("accepts only pool pods when given a pool filter: others are counted without their id and change nothing", async () => {
    const pool = new Set(["10.0.0.1", "10.0.0.2:8000"]);
    const { ingest, index, metrics, registry, lines } = setup({}, (pod) => pool.has(pod));
    const store = (h: bigint): EventSpec[] => [{ type: "BlockStored", hashes: [h] }];
    ingest.handleMessage(msg("kv@10.0.0.1@m", 0, store(1n)));
    ingest.handleMessage(msg("kv@10.0.0.2:8000@m", 0, store(2n)));
    for (let i = 0; i < 5; i++) ingest.handleMessage(msg(`kv@6.6.6.${i}@m`, i, store(3n)));
    ingest.handleMessage([Buffer.from("kv@6.6.6.6@m"), Buffer.alloc(3)]); // malformed too: still just rejected
    expect(index.stats().entries).toBe(2);
    expect(ingest.podStates().map((s) => s.podId)).toEqual(["10.0.0.1", "10.0.0.2:8000"]);
    expect(await value(metrics.kvEventsRejected, { reason: "not-in-pool" })).toBe(6);
    expect((await metrics.kvEventsMalformed.get()).values).toEqual([]);
    const text = await registry.metrics();
    expect(text).not.toContain("6.6.6.");
    expect(lines.filter((l) => String(l.msg).includes("outside the pool"))).toHaveLength(1); // rate-limited
  });

  it("marks a pod degraded after a gap and on mismatching hashes, not when it only joined late", () => {
    const { ingest } = setup();
    const ev = (h: bigint): EventSpec[] => [{ type: "BlockStored", hashes: [h], parent: 9n }];
    ingest.handleMessage(msg("kv@late@m", 40, ev(1n))); // first batch at seq 40: lost history only
    expect(ingest.accuracy("late")).toBe("exact");
    ingest.handleMessage(msg("kv@late@m", 43, ev(2n)));
    expect(ingest.accuracy("late")).toBe("degraded");
    expect(ingest.podStates()[0]).toMatchObject({ stale: true, degradedReason: "gap" });
    expect(ingest.accuracy("never")).toBeNull();
    const { ingest: other } = setup({ hashSeed: "0" });
    other.handleMessage(
      msg("kv@x@m", 0, [{ type: "BlockStored", hashes: [V0100[0]!], tokenIds: TOKENS.slice(0, 64) }]),
    );
    expect(other.podStates()[0]).toMatchObject({ accuracy: "degraded", degradedReason: "hash-mismatch" });
  });
});
