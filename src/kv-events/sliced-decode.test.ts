import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { loadVector } from "../../test/support/golden.js";
import { encodeBatch, seqFrame } from "../../test/support/kv-event-publisher.js";
import { BlockIndex } from "../kv-index/block-index.js";
import { createLogger } from "../observability/logger.js";
import { KvEventsMetrics } from "../observability/kv-events-metrics.js";
import { DecodeError, decodeBatch, STEP } from "./decode.js";
import { KvEventIngest } from "./ingest.js";
import { LoopSlicer } from "./loop-slicer.js";
import { quantile, turnsWhile, watchTurns } from "../../test/support/loop-turns.js";
import { decodeBatchSliced, SLICED_DECODE_BYTES } from "./sliced-decode.js";

/** One generator step per loop turn: the most turns a decode can take. */
const oneStepATurn = new LoopSlicer(0);

const golden = loadVector<{ layouts: { layout: string; messages: { frames_hex: string[] }[] }[] }>(
  "vllm-kv-event-frames.json",
);

/** u64 values that need the 9-byte msgpack form, as vLLM's do. */
const hashes = (n: number, salt: number) =>
  Array.from({ length: n }, (_, i) => (BigInt(i + 1) * 0x9e3779b97f4a7c15n + BigInt(salt)) % 2n ** 64n);

/** A huge batch: a 150,000-block BlockStored with tokens (block size 4), a removal and a clear around it. */
function hugePayload(salt = 0): Uint8Array {
  const stored = hashes(150_000, salt);
  return encodeBatch(
    [
      { type: "BlockRemoved", hashes: hashes(3, 99) },
      {
        type: "BlockStored",
        hashes: stored,
        parent: 77n,
        blockSize: 4,
        tokenIds: Array.from({ length: stored.length * 4 }, (_, i) => (i * 7919) % 151_936),
      },
      { type: "AllBlocksCleared" },
      { type: "BlockStored", hashes: stored.slice(0, 5) },
    ],
    { layout: "v0.10.2" },
  );
}

/** The offset of the n-th 9-byte uint64 (0xcf) inside the payload's block_hashes. */
function nthUint64(payload: Uint8Array, n: number): number {
  let seen = 0;
  for (let i = 0; i < payload.length - 9; i++) if (payload[i] === 0xcf && seen++ === n) return i;
  throw new Error("not found");
}

describe("decodeBatchSliced", () => {
  it("decodes every golden frame exactly as decodeBatch does", async () => {
    let n = 0;
    for (const layout of golden.layouts) {
      for (const m of layout.messages) {
        const payload = Buffer.from(m.frames_hex[2]!, "hex");
        let want: unknown;
        try {
          want = decodeBatch(payload);
        } catch (err) {
          want = err;
        }
        if (want instanceof Error)
          await expect(decodeBatchSliced(payload, undefined, oneStepATurn)).rejects.toEqual(want);
        else expect(await decodeBatchSliced(payload, undefined, oneStepATurn)).toEqual(want);
        n++;
      }
    }
    expect(n).toBeGreaterThan(5);
  });

  it("spreads a huge batch over event-loop turns and returns the same events", async () => {
    const payload = hugePayload();
    expect(payload.length).toBeGreaterThan(SLICED_DECODE_BYTES);
    const want = decodeBatch(payload);
    const [got, turns] = await turnsWhile(decodeBatchSliced(payload, undefined, oneStepATurn));
    expect(got).toEqual(want);
    // 150,000 hashes + 600,000 token ids, STEP at a time: about that many pauses (the counter starts late).
    expect(turns).toBeGreaterThanOrEqual(Math.floor(150_000 / STEP) + Math.floor(600_000 / STEP) - 2);
    expect(want.events.map((e) => e.type)).toEqual([
      "BlockRemoved",
      "BlockStored",
      "AllBlocksCleared",
      "BlockStored",
    ]);
  });

  it("rejects a payload broken mid-array with decodeBatch's DecodeError", async () => {
    const payload = hugePayload();
    payload[nthUint64(payload, 100_000)] = 0xc1; // never used in msgpack
    let want: unknown;
    try {
      decodeBatch(payload);
    } catch (err) {
      want = err;
    }
    expect(want).toBeInstanceOf(DecodeError);
    await expect(decodeBatchSliced(payload, undefined, oneStepATurn)).rejects.toEqual(want);
    // Truncated in the middle of the token ids.
    const cut = hugePayload().subarray(0, 1_500_000);
    await expect(decodeBatchSliced(cut, undefined, oneStepATurn)).rejects.toThrow(DecodeError);
  });

  it("stops when cancelled", async () => {
    let calls = 0;
    expect(await decodeBatchSliced(hugePayload(), () => ++calls > 2, oneStepATurn)).toBeNull();
  });
});

describe("KvEventIngest with a huge payload", () => {
  function setup() {
    const registry = new Registry();
    const metrics = new KvEventsMetrics(registry);
    const index = new BlockIndex({ maxEntries: 2_500_000, mediumWeights: { GPU: 1 } });
    const logger = createLogger({ level: "error", destination: { write: () => {} } });
    const ingest = new KvEventIngest({
      index,
      logger,
      recorder: metrics,
      hash: { hashAlgo: "sha256_cbor_64bit", hashSeed: "42", blockSize: 64 },
    });
    return { index, ingest, metrics };
  }
  const frames = (seq: number, payload: Uint8Array) => [Buffer.from("kv@p@m"), seqFrame(seq), payload];
  const stored = (n: number, salt: number) =>
    encodeBatch([{ type: "BlockStored", hashes: hashes(n, salt) }], { layout: "v0.10.2" });

  it("applies it once decoded in slices, in order with what follows", async () => {
    const { index, ingest } = setup();
    expect(ingest.handleMessage(frames(0, stored(10, 5)))).toBeUndefined();
    const busy = ingest.handleMessage(frames(1, hugePayload(1)));
    expect(busy).toBeInstanceOf(Promise);
    expect(index.stats().entries).toBe(10); // nothing of the huge batch before it decoded in full
    await busy;
    // Removal (of unknown blocks), 150,000 stored, cleared, 5 stored: what decodeBatch + apply gives.
    await until(() => index.stats().entries === 5);
    expect(index.holds("p", ...words(hashes(5, 1)[4]!))).toBe(true);
    expect(ingest.handleMessage(frames(2, stored(3, 9)))).toBeUndefined();
    expect(index.stats().entries).toBe(8);
  });

  it("counts a huge malformed payload and leaves the index as it was", async () => {
    const { index, ingest, metrics } = setup();
    ingest.handleMessage(frames(0, stored(10, 5)));
    const bad = hugePayload(2);
    bad[nthUint64(bad, 120_000)] = 0xc1;
    await ingest.handleMessage(frames(1, bad));
    expect(index.stats().entries).toBe(10);
    const got = await metrics.kvEventsMalformed.get();
    expect(got.values.find((v) => v.labels.reason === "payload")?.value).toBe(1);
  });

  it("decodes one pod's huge batch while applying another's within one ~1 ms budget per loop turn", async () => {
    const { index, ingest } = setup();
    const other = (pod: string, seq: number, payload: Uint8Array) => [
      Buffer.from(`kv@${pod}@m`),
      seqFrame(seq),
      payload,
    ];
    // Pod a's 1,000,000 blocks take ~1 s to apply; pod b's 1,000,000-block message decodes meanwhile.
    const [a, b] = [other("a", 0, stored(1_000_000, 11)), other("b", 0, stored(1_000_000, 12))];
    await ingest.handleMessage(a);
    const probe = watchTurns();
    await ingest.handleMessage(b);
    const { turns, wallMs } = probe.stop();
    expect(index.stats().entries).toBeLessThan(1_000_000); // a's apply was still under way throughout
    // Each slicing worker used to take 2 ms of its own in the same turn (a decode + an apply: ~4 ms turns).
    expect(turns).toBeGreaterThan(10);
    // Wall time: the main thread's on-core time (schedstat) only moves at scheduler ticks, too coarse here.
    expect(quantile(wallMs, 0.5)).toBeLessThan(2.5);
    await until(() => index.stats().entries === 2_000_000);
  });

  it("drops a batch still decoding when its pod leaves", async () => {
    const { index, ingest } = setup();
    const busy = ingest.handleMessage(frames(0, hugePayload(3)));
    ingest.forgetPod("p");
    await busy;
    await new Promise((r) => setTimeout(r, 50));
    expect(index.stats().entries).toBe(0);
  });
});

const words = (h: bigint): [number, number] => [Number(h & 0xffffffffn), Number(h >> 32n)];

async function until(ok: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
}
