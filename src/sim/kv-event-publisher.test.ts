// The simulated vLLM publisher's replay side on real sockets: what a dropped batch is, the ring bound,
// both reply layouts, and what a restart does to them.
import { afterEach, describe, expect, it } from "vitest";
import { Dealer } from "zeromq";
import { decodeBatch } from "../kv-events/decode.js";
import { requestReplay } from "../kv-events/replay-client.js";
import { LiveClock } from "./clock.js";
import { SimKvEventPublisher } from "./kv-event-publisher.js";
import { ReplayRing } from "./replay-ring.js";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function publisher(layout: "v0.10" | "v0.26", bufferSteps = 10_000) {
  const p = new SimKvEventPublisher({
    endpoint: "tcp://127.0.0.1:*", // binds: nobody needs to listen
    topic: "kv@127.0.0.9@m",
    clock: new LiveClock(1),
    replayEndpoint: "tcp://127.0.0.1:*",
    replayLayout: layout,
    bufferSteps,
  });
  await p.start();
  cleanup.push(() => p.close());
  return p;
}

const stored = (h: bigint) => ({
  ts: 1,
  events: [
    {
      type: "BlockStored" as const,
      hashes: [h],
      parent: null,
      tokenIds: [],
      blockSize: 64,
      medium: "GPU" as const,
    },
  ],
});

async function replayAll(p: SimKvEventPublisher, from = 0n) {
  const got: { seq: bigint; hash: bigint; topic: string | null }[] = [];
  const outcome = await requestReplay(
    p.replayEndpoint!,
    from,
    {
      onBatch: (seq, payload, topic) => {
        const ev = decodeBatch(payload).events[0]!;
        got.push({
          seq,
          hash: ev.type === "BlockStored" ? ev.blockHashes[0]! : -1n,
          topic: topic === null ? null : Buffer.from(topic).toString(),
        });
      },
      onMalformed: (r) => {
        throw new Error(`malformed ${r}`);
      },
    },
    { timeoutMs: 5000 },
  );
  return { outcome, got };
}

describe("ReplayRing", () => {
  it("keeps the last N batches, oldest first", () => {
    const r = new ReplayRing(3);
    for (let i = 0n; i < 5n; i++) r.push(i, new Uint8Array([Number(i)]));
    expect(r.size).toBe(3);
    expect(r.from(0n).map((e) => e.seq)).toEqual([2n, 3n, 4n]);
    expect(r.from(4n).map((e) => e.seq)).toEqual([4n]);
    r.clear();
    expect(r.from(0n)).toEqual([]);
  });
});

describe("SimKvEventPublisher replay socket", () => {
  for (const layout of ["v0.10", "v0.26"] as const) {
    it(`buffers dropped batches too (lost on the wire) and replays them (${layout} layout)`, async () => {
      const p = await publisher(layout);
      for (let i = 0; i < 6; i++) {
        p.dropFraction = i === 2 || i === 3 ? 1 : 0;
        p.publish(stored(BigInt(100 + i)));
      }
      expect([p.seq, p.dropped, p.buffered]).toEqual([6n, 2, 6]);
      const { outcome, got } = await replayAll(p, 1n);
      expect(outcome).toEqual({ kind: "complete", batches: 5 });
      expect(got.map((g) => [g.seq, g.hash])).toEqual([
        [1n, 101n],
        [2n, 102n],
        [3n, 103n],
        [4n, 104n],
        [5n, 105n],
      ]);
      expect(got[0]!.topic).toBe(layout === "v0.26" ? "kv@127.0.0.9@m" : null);
    });
  }

  it("keeps only bufferSteps batches, and a restart empties the ring and starts again at seq 0", async () => {
    const p = await publisher("v0.10", 4);
    for (let i = 0; i < 10; i++) p.publish(stored(BigInt(i)));
    expect((await replayAll(p)).got.map((g) => g.seq)).toEqual([6n, 7n, 8n, 9n]);
    const replayAt = p.replayEndpoint;
    await p.restart();
    expect(p.replayEndpoint).toBe(replayAt); // the replay socket stays bound
    expect([p.seq, p.buffered]).toEqual([0n, 0]);
    p.publish(stored(42n));
    expect((await replayAll(p)).got.map((g) => [g.seq, g.hash])).toEqual([[0n, 42n]]);
  });

  it("ignores malformed requests, as vLLM does, and still answers good ones", async () => {
    const p = await publisher("v0.10");
    p.publish(stored(1n));
    const d = new Dealer({ linger: 0 });
    cleanup.push(() => d.close());
    d.connect(p.replayEndpoint!);
    await d.send([Buffer.alloc(0), Buffer.alloc(3)]);
    await d.send(["x", Buffer.alloc(8)]);
    const deadline = Date.now() + 5000;
    while (p.replayServer!.invalid < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(p.replayServer!.invalid).toBe(2);
    expect((await replayAll(p)).got).toHaveLength(1);
  });
});
