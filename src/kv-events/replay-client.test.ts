// The replay DEALER against real ROUTER sockets: the simulator's vLLM replay socket in both reply layouts,
// and a hand-driven ROUTER sending garbage.
import { afterEach, describe, expect, it } from "vitest";
import { END_SEQ, FakeReplayRouter } from "../../test/support/fake-replay-router.js";
import { freePort } from "../../test/support/free-port.js";
import { createLogger } from "../observability/logger.js";
import { type ReplayLayout, SimReplayServer } from "../sim/kv-event-replay-server.js";
import { ReplayRing } from "../sim/replay-ring.js";
import { parseReply, type ReplayHandlers, requestReplay, startSeqFrame } from "./replay-client.js";
import { until as pollUntil } from "../../test/support/until.js";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function collector() {
  const batches: { seq: bigint; payload: string; topic: string | null }[] = [];
  const malformed: string[] = [];
  const handlers: ReplayHandlers = {
    onBatch: (seq, payload, topic) => {
      batches.push({
        seq,
        payload: Buffer.from(payload).toString(),
        topic: topic === null ? null : Buffer.from(topic).toString(),
      });
    },
    onMalformed: (reason) => malformed.push(reason),
  };
  return { batches, malformed, handlers };
}

async function simServer(layout: ReplayLayout, ring: ReplayRing) {
  const server = new SimReplayServer({
    endpoint: "tcp://127.0.0.1:*",
    layout,
    logger: createLogger({ level: "silent" }),
    source: { topic: "kv@10.0.0.1@m", snapshot: (s) => ring.from(s), epoch: 0 },
  });
  const endpoint = await server.start();
  cleanup.push(() => server.close());
  return { server, endpoint };
}

const seq8 = (n: bigint) => startSeqFrame(n);

describe("parseReply", () => {
  const cases: [string, Uint8Array[], string][] = [
    ["v0.10 batch", [Buffer.alloc(0), seq8(7n), Buffer.from("p")], "batch 7 p -"],
    ["v0.26 batch", [Buffer.alloc(0), Buffer.from("kv@a@m"), seq8(7n), Buffer.from("p")], "batch 7 p kv@a@m"],
    ["v0.10 end", [Buffer.alloc(0), END_SEQ, Buffer.alloc(0)], "end"],
    ["v0.26 end", [Buffer.alloc(0), Buffer.alloc(0), END_SEQ, Buffer.alloc(0)], "end"],
    ["2 frames", [Buffer.alloc(0), seq8(1n)], "bad frames"],
    [
      "5 frames",
      [Buffer.alloc(0), Buffer.alloc(1), seq8(1n), Buffer.alloc(1), Buffer.alloc(1)],
      "bad frames",
    ],
    ["no delimiter", [Buffer.from("x"), seq8(1n), Buffer.from("p")], "bad delimiter"],
    ["7-byte seq", [Buffer.alloc(0), Buffer.alloc(7), Buffer.from("p")], "bad seq"],
  ];
  for (const [name, frames, want] of cases) {
    it(`reads ${name}`, () => {
      const r = parseReply(frames);
      const got =
        r.kind === "batch"
          ? `batch ${r.seq} ${Buffer.from(r.payload).toString()} ${r.topic === null ? "-" : Buffer.from(r.topic).toString()}`
          : r.kind === "end"
            ? "end"
            : `bad ${r.reason}`;
      expect(got).toBe(want);
    });
  }
});

describe("requestReplay", () => {
  for (const layout of ["v0.10", "v0.26"] as const) {
    it(`gets every buffered batch from start_seq on, in order, from vLLM's ${layout} replay socket`, async () => {
      const ring = new ReplayRing(6);
      for (let i = 0n; i < 10n; i++) ring.push(i, Buffer.from(`batch-${i}`)); // 0..3 fell out of the ring
      const { server, endpoint } = await simServer(layout, ring);
      const c = collector();
      const outcome = await requestReplay(endpoint, 2n, c.handlers, { timeoutMs: 5000 });
      expect(outcome).toEqual({ kind: "complete", batches: 6 });
      expect(c.batches.map((b) => b.seq)).toEqual([4n, 5n, 6n, 7n, 8n, 9n]);
      expect(c.batches[0]!.payload).toBe("batch-4");
      expect(c.batches[0]!.topic).toBe(layout === "v0.26" ? "kv@10.0.0.1@m" : null);
      expect(c.malformed).toEqual([]);
      // Nothing at or after 50: an empty reply, still complete.
      expect(await requestReplay(endpoint, 50n, collector().handlers, { timeoutMs: 5000 })).toEqual({
        kind: "complete",
        batches: 0,
      });
      expect(server.served).toBe(2);
    });
  }

  it("times out when nothing answers on the endpoint", async () => {
    const port = await freePort();
    const c = collector();
    const outcome = await requestReplay(`tcp://127.0.0.1:${port}`, 0n, c.handlers, { timeoutMs: 100 });
    expect(outcome).toEqual({ kind: "timeout", batches: 0 });
  });

  it("skips and reports malformed replies, keeps the valid ones, and gives up on a flood of garbage", async () => {
    const router = new FakeReplayRouter();
    const endpoint = await router.bind();
    cleanup.push(() => router.close());
    const c = collector();
    const pending = requestReplay(endpoint, 3n, c.handlers, { timeoutMs: 5000, maxMalformed: 10 });
    await until(() => router.requests.length === 1);
    const req = router.requests[0]!;
    expect(req.start).toBe(3n);
    await router.reply(req, ["", seq8(3n)]); // 2 frames
    await router.reply(req, ["x", seq8(3n), "p"]); // no delimiter
    await router.reply(req, ["", Buffer.alloc(3), "p"]); // short seq
    await router.reply(req, ["", seq8(3n), "good-3"]);
    await router.reply(req, ["", "kv@a@m", seq8(4n), "good-4"]); // layouts may even mix
    await router.reply(req, ["", END_SEQ, ""]);
    expect(await pending).toEqual({ kind: "complete", batches: 2 });
    expect(c.malformed).toEqual(["frames", "delimiter", "seq"]);
    expect(c.batches.map((b) => b.payload)).toEqual(["good-3", "good-4"]);

    const flood = collector();
    const p2 = requestReplay(endpoint, 0n, flood.handlers, { timeoutMs: 5000, maxMalformed: 10 });
    await until(() => router.requests.length === 2);
    for (let i = 0; i < 20; i++) await router.reply(router.requests[1]!, ["garbage"]);
    const outcome = await p2;
    expect(outcome.kind).toBe("failed");
    expect(flood.malformed).toHaveLength(11);
  });

  it("stops at once when aborted", async () => {
    const router = new FakeReplayRouter();
    const endpoint = await router.bind();
    cleanup.push(() => router.close());
    const controller = new AbortController();
    const pending = requestReplay(endpoint, 0n, collector().handlers, {
      timeoutMs: 60_000,
      signal: controller.signal,
    });
    await until(() => router.requests.length === 1);
    controller.abort();
    expect(await pending).toEqual({ kind: "aborted", batches: 0 });
  });
});

const until = (cond: () => boolean, timeoutMs = 5000) => pollUntil(cond, "the replay", timeoutMs, 5);
