// Replays that lose replies in the middle, on real ZeroMQ: vLLM's replay ROUTER (send high-water mark 1,000,
// not mandatory) drops whatever exceeds the pipe while its I/O thread drains, so a long reply can skip a run
// of batches and go on. kvpick must stop at the hole and ask again from it, not apply past it.
import { afterEach, describe, expect, it } from "vitest";
import { END_SEQ, FakeReplayRouter } from "../../test/support/fake-replay-router.js";
import { encodeBatch, seqFrame } from "../../test/support/kv-event-publisher.js";
import { until } from "../../test/support/until.js";
import { BlockIndex } from "../kv-index/block-index.js";
import { createLogger } from "../observability/logger.js";
import { Metrics } from "../observability/metrics.js";
import { KvEventIngest } from "./ingest.js";
import { loopSlicer } from "./loop-slicer.js";
import { SLICED_DECODE_BYTES } from "./sliced-decode.js";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const POD = "10.2.0.1";
const hashOf = (seq: number) => BigInt(1000 + seq);
const batch = (seq: number) => ({
  seq: BigInt(seq),
  payload: encodeBatch([{ type: "BlockStored", hashes: [hashOf(seq)] }]),
});
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => batch(from + i));

async function setup(maxEntries = 10_000) {
  const router = new FakeReplayRouter();
  const endpoint = await router.bind();
  cleanup.push(() => router.close());
  const index = new BlockIndex({ maxEntries, mediumWeights: { GPU: 1 } });
  const metrics = new Metrics();
  const ingest = new KvEventIngest({
    index,
    logger: createLogger({ level: "silent" }),
    recorder: metrics.kvEvents,
    hash: { hashAlgo: "sha256_cbor_64bit", hashSeed: "42", blockSize: 64 },
    replay: {
      endpoint: () => endpoint,
      timeoutMs: 5_000,
      cooldownMs: 0,
      maxConcurrent: 1,
      maxHeldBatches: 100,
    },
  });
  cleanup.push(() => ingest.close());
  return { router, index, ingest };
}

describe("PodReplays", () => {
  it("stops at a hole in the middle of a reply and resumes from it: every batch of the ring applied, the pod exact", async () => {
    const { router, index, ingest } = await setup();
    // kvpick joins late: the pod's first live batch has seq 30, so the ring (0..29) is replayed first.
    ingest.handleMessage([Buffer.from(`kv@${POD}@m`), seqFrame(30), encodeBatch([])]);
    await until(() => router.requests.length === 1, "the replay request");
    expect(router.requests[0]!.start).toBe(0n);
    // 0..9 arrive, 10..19 are dropped by the ROUTER, 20..29 and the end marker arrive.
    for (const b of [...range(0, 10), ...range(20, 30)]) {
      const seq = Buffer.alloc(8);
      seq.writeBigUInt64BE(b.seq);
      await router.reply(router.requests[0]!, ["", seq, b.payload]);
    }
    await router.reply(router.requests[0]!, ["", END_SEQ, ""]);
    await until(() => router.requests.length === 2, "a resumed replay from the hole");
    expect(router.requests[1]!.start).toBe(10n);
    await router.replyAll(router.requests[1]!, range(10, 30));
    await until(() => ingest.podStates()[0]?.replays === 0, "the replay done");
    const held = Array.from(
      { length: 30 },
      (_, s) => index.matchPrefix(BigUint64Array.of(hashOf(s)), [POD]).blocks[0],
    );
    expect(held).toEqual(Array(30).fill(1));
    expect(ingest.podStates()[0]).toMatchObject({ accuracy: "exact", publishers: [{ lastSeq: "30" }] });
  });

  it("decodes a huge replayed batch in slices, the replies after it applied after it", async () => {
    const { router, index, ingest } = await setup(2_000_000);
    const hashes = Array.from({ length: 1_000_000 }, (_, i) => BigInt(i) + 0x1_0000_0000n);
    const huge = { seq: 0n, payload: encodeBatch([{ type: "BlockStored", hashes }]) };
    expect(huge.payload.length).toBeGreaterThan(SLICED_DECODE_BYTES);
    ingest.handleMessage([Buffer.from(`kv@${POD}@m`), seqFrame(3), encodeBatch([])]);
    await until(() => router.requests.length === 1, "the replay request");
    // Loop turns in which sliced work was under way before any block was applied: the decode's.
    let decodingTurns = 0;
    const probe = setInterval(() => {
      if (loopSlicer.size > 0 && index.stats().entries === 0) decodingTurns++;
    }, 0);
    cleanup.push(() => clearInterval(probe));
    await router.replyAll(router.requests[0]!, [huge, batch(1), batch(2)]);
    await until(() => ingest.podStates()[0]?.replays === 0, "the replay done", 30_000);
    await until(() => index.stats().entries === 1_000_002, "every block applied", 30_000);
    // Decoded in one go (before), the 9 MB message held the loop for one turn of ~55–100 ms: no such turn.
    expect(decodingTurns).toBeGreaterThan(10);
    const first = index.matchPrefix(BigUint64Array.from(hashes.slice(0, 4)), [POD]).blocks[0];
    expect(first).toBe(4);
    expect(index.matchPrefix(BigUint64Array.of(hashOf(2)), [POD]).blocks[0]).toBe(1);
    expect(ingest.podStates()[0]).toMatchObject({ accuracy: "exact", publishers: [{ lastSeq: "3" }] });
  });
});
