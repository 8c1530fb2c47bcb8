// KV-event recovery on real ZeroMQ sockets: the simulator's vLLM publisher (PUB + replay ROUTER) → kvpick's
// kv-events path (SUB + replay DEALER). Every recovered index is compared with a gap-free reference run
// of the same batches.
import type { Counter, Gauge } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { configSchema } from "../../src/config/schema.js";
import { KvEventIngest } from "../../src/kv-events/ingest.js";
import { createKvEvents, type KvEvents } from "../../src/kv-events/create-kv-events.js";
import { BlockIndex } from "../../src/kv-index/block-index.js";
import { createLogger } from "../../src/observability/logger.js";
import { Metrics } from "../../src/observability/metrics.js";
import { LiveClock } from "../../src/sim/clock.js";
import type { SimEventBatch, SimKvEvent } from "../../src/sim/kv-event.js";
import { SimKvEventPublisher } from "../../src/sim/kv-event-publisher.js";
import type { ReplayLayout } from "../../src/sim/kv-event-replay-server.js";
import { END_SEQ, FakeReplayRouter } from "../support/fake-replay-router.js";
import { freePort } from "../support/free-port.js";
import { encodeBatch, KvEventPublisher, seqFrame } from "../support/kv-event-publisher.js";
import { until } from "../support/until.js";

const HASH = { hashAlgo: "sha256_cbor_64bit", hashSeed: "42", blockSize: 64 } as const;
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function value(metric: Counter<string> | Gauge<string>, labels: Record<string, string>) {
  const got = await metric.get();
  return got.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value ?? 0;
}

type Resolver = (pod: string, rank: number | null) => string | null;

function subscriber(o: {
  mode?: "bind" | "connect";
  endpoint?: string;
  replay?: Resolver;
  kvEvents?: Record<string, unknown>;
}) {
  const config = configSchema.parse({
    kvEvents: { mode: o.mode ?? "bind", endpoint: o.endpoint ?? "tcp://127.0.0.1:*", ...o.kvEvents },
  });
  const index = new BlockIndex(config.index);
  const metrics = new Metrics();
  const logs: Record<string, unknown>[] = [];
  const sub = createKvEvents({
    config: config.kvEvents,
    hash: HASH,
    index,
    logger: createLogger({
      level: "debug",
      destination: { write: (s: string) => void logs.push(JSON.parse(s)) },
    }),
    recorder: metrics.kvEvents,
    ...(o.replay === undefined ? {} : { replayEndpoint: o.replay }),
  });
  cleanup.push(() => sub.stop(0));
  return { sub, index, metrics, logs };
}

async function simPublisher(o: { endpoint: string; topic: string; layout?: ReplayLayout; replay?: boolean }) {
  const p = new SimKvEventPublisher({
    endpoint: o.endpoint,
    topic: o.topic,
    clock: new LiveClock(1),
    ...(o.replay === false ? {} : { replayEndpoint: "tcp://127.0.0.1:*", replayLayout: o.layout ?? "v0.10" }),
  });
  await p.start();
  cleanup.push(() => p.close());
  return p;
}

/** A deterministic stream of stores and removals (removals of earlier stores, so gaps matter). */
function stream(count: number, seed: number): SimEventBatch[] {
  let s = seed;
  const rnd = (n: number) => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 8) % n;
  };
  const live: bigint[] = [];
  const out: SimEventBatch[] = [];
  for (let i = 0; i < count; i++) {
    const events: SimKvEvent[] = [];
    const hashes = Array.from(
      { length: 1 + rnd(3) },
      (_, k) => BigInt(seed) * 1_000_000n + BigInt(i * 10 + k),
    );
    events.push({ type: "BlockStored", hashes, parent: 1n, tokenIds: [], blockSize: 64, medium: "GPU" });
    live.push(...hashes);
    if (live.length > 4 && rnd(2) === 0) {
      const [gone] = live.splice(rnd(live.length), 1);
      events.push({ type: "BlockRemoved", hashes: [gone!], medium: "GPU" });
    }
    out.push({ ts: 1_700_000_000 + i, events });
  }
  return out;
}

/** The hashes a pod holds in `index`, among all the stream ever stored. */
function held(index: BlockIndex, pod: string, batches: SimEventBatch[]): string[] {
  const all = batches.flatMap((b) => b.events.flatMap((e) => (e.type === "BlockStored" ? e.hashes : [])));
  return all.filter((h) => index.matchPrefix(BigUint64Array.of(h), [pod]).blocks[0]! > 0).map(String);
}

/** What a subscriber that lost nothing holds: the same batches applied in order. */
function reference(pod: string, p: SimKvEventPublisher, batches: SimEventBatch[]): string[] {
  const index = new BlockIndex({ maxEntries: 1_000_000, mediumWeights: { GPU: 1 } });
  const ingest = new KvEventIngest({
    index,
    logger: createLogger({ level: "silent" }),
    recorder: new Metrics().kvEvents,
    hash: HASH,
  });
  batches.forEach((b, i) => {
    ingest.handleMessage([Buffer.from(`kv@${pod}@m`), seqFrame(i), p.encoder.encode(b)]);
  });
  return held(index, pod, batches);
}

const appliedSeq = (sub: KvEvents, pod: string) =>
  sub.podStates().find((s) => s.podId === pod)?.publishers[0]?.lastSeq ?? null;
const settled = (sub: KvEvents, pod: string, lastSeq: bigint) => () => {
  const s = sub.podStates().find((x) => x.podId === pod);
  return s !== undefined && s.replays === 0 && s.publishers[0]?.lastSeq === String(lastSeq);
};

/** Empty batches until the subscriber has heard the pod (ZeroMQ's slow joiner drops the first ones). */
async function warmUp(p: SimKvEventPublisher, sub: KvEvents, pod: string, batches: SimEventBatch[]) {
  const deadline = Date.now() + 10_000;
  while (appliedSeq(sub, pod) === null) {
    if (Date.now() > deadline) throw new Error("subscriber not receiving");
    const b = { ts: 1, events: [] };
    batches.push(b);
    p.publish(b);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("KV-event replay", () => {
  for (const layout of ["v0.10", "v0.26"] as const) {
    it(`fills a sequence gap from the pod's replay socket: the index equals a gap-free run (${layout})`, async () => {
      const pod = "10.1.0.1";
      let replayAt = "";
      const { sub, index, metrics } = subscriber({ replay: (id) => (id === pod ? replayAt : null) });
      await sub.start();
      const p = await simPublisher({ endpoint: sub.endpoint!, topic: `kv@${pod}@m`, layout });
      replayAt = p.replayEndpoint!;
      const batches: SimEventBatch[] = [];
      await warmUp(p, sub, pod, batches);
      await until(settled(sub, pod, p.seq - 1n), "warm-up applied"); // a late join replays first
      const body = stream(40, 7);
      body.forEach((b, i) => {
        p.dropFraction = i >= 10 && i < 15 ? 1 : 0; // five batches lost on the wire
        batches.push(b);
        p.publish(b);
      });
      await until(settled(sub, pod, p.seq - 1n), "the pod caught up");
      expect(p.dropped).toBe(5);
      expect(held(index, pod, batches)).toEqual(reference(pod, p, batches));
      expect(await value(metrics.kvEvents.kvSeqGaps, { pod })).toBe(1);
      expect(await value(metrics.kvEvents.kvReplayedBatches, { pod })).toBeGreaterThanOrEqual(5);
      expect(await value(metrics.kvEvents.kvReplays, { pod, result: "complete" })).toBeGreaterThanOrEqual(1);
      expect(sub.ingest.accuracy(pod)).toBe("exact");
      expect(await value(metrics.kvEvents.kvPodStale, { pod })).toBe(0);
    });
  }

  it("recovers a pod's state after an EPP restart (a new subscriber replays from 0)", async () => {
    const pod = "10.1.0.2";
    const port = await freePort();
    const endpoint = `tcp://127.0.0.1:${port}`;
    let replayAt = "";
    const resolve: Resolver = (id) => (id === pod ? replayAt : null);
    const first = subscriber({ endpoint, replay: resolve });
    await first.sub.start();
    const p = await simPublisher({ endpoint, topic: `kv@${pod}@m` });
    replayAt = p.replayEndpoint!;
    const batches: SimEventBatch[] = [];
    await warmUp(p, first.sub, pod, batches);
    for (const b of stream(30, 11)) {
      batches.push(b);
      p.publish(b);
    }
    await until(settled(first.sub, pod, p.seq - 1n), "first subscriber caught up");
    const before = held(first.index, pod, batches);
    expect(before).toEqual(reference(pod, p, batches));
    await first.sub.stop(0);

    // kvpick restarts on the same address; the pod's PUB reconnects by itself. The first batch the new
    // subscriber sees has seq > 0: it replays from 0 and gets everything the ring still holds.
    const second = subscriber({ endpoint, replay: resolve });
    await bindRetrying(second.sub);
    await warmUp(p, second.sub, pod, batches);
    await until(settled(second.sub, pod, p.seq - 1n), "second subscriber caught up");
    expect(held(second.index, pod, batches)).toEqual(before);
    expect(await value(second.metrics.kvEvents.kvReplays, { pod, result: "complete" })).toBe(1);
    expect(second.sub.ingest.accuracy(pod)).toBe("exact");
  });

  it("connect mode: replays on connect, so a pod that published before kvpick subscribed is known at once", async () => {
    const pod = "127.0.0.1:8000";
    const p = await simPublisher({ endpoint: "tcp://127.0.0.1:*", topic: "kv@127.0.0.1@m" });
    const batches = stream(25, 13);
    for (const b of batches) p.publish(b); // nobody listens yet: only the ring has them
    const { sub, index } = subscriber({ mode: "connect", replay: () => p.replayEndpoint });
    await sub.start();
    sub.addPod(pod, p.boundEndpoint!);
    await until(settled(sub, pod, p.seq - 1n), "replayed on connect");
    expect(held(index, pod, batches)).toEqual(reference(pod, p, batches));
  });

  // vLLM's replay ROUTER sets no socket option (send high-water mark 1,000, not mandatory): past the peer's
  // queue it drops replies silently, the end marker included. The simulator's ROUTER does the same.
  it("replays a ring of 2,500 batches in full from a ROUTER at vLLM's defaults: all applied, the pod exact", async () => {
    const pod = "127.0.0.1:8002";
    const p = await simPublisher({ endpoint: "tcp://127.0.0.1:*", topic: "kv@127.0.0.1@m" });
    const batches = stream(2_500, 17);
    for (const b of batches) p.publish(b); // before kvpick (re)started: only the ring has them
    expect(p.buffered).toBe(2_500);
    const { sub, index, metrics } = subscriber({
      mode: "connect",
      replay: () => p.replayEndpoint,
      kvEvents: { replayTimeoutMs: 500 },
    });
    await sub.start();
    sub.addPod(pod, p.boundEndpoint!);
    await until(settled(sub, pod, p.seq - 1n), "the whole ring replayed", 30_000);
    expect(await value(metrics.kvEvents.kvReplayedBatches, { pod })).toBe(2_500);
    expect(held(index, pod, batches)).toEqual(reference(pod, p, batches));
    expect(await value(metrics.kvEvents.kvReplays, { pod, result: "complete" })).toBe(1);
    expect(sub.ingest.accuracy(pod)).toBe("exact");
  });

  it("a replay whose tail is dropped (end marker included) degrades the pod at once, resumes after the last applied seq, and is exact only once one ends with its marker", async () => {
    const pod = "127.0.0.1:8003";
    const p = await simPublisher({ endpoint: "tcp://127.0.0.1:*", topic: "kv@127.0.0.1@m" });
    const batches = stream(2_150, 19);
    for (const b of batches) p.publish(b);
    const server = p.replayServer!;
    server.dropTailAfter = 700; // every reply stops after 700 batches: no end marker
    const { sub, index, metrics, logs } = subscriber({
      mode: "connect",
      replay: () => p.replayEndpoint,
      kvEvents: { replayTimeoutMs: 300 },
    });
    await sub.start();
    const seen = new Set<string>();
    const watch = setInterval(() => seen.add(sub.ingest.accuracy(pod) ?? "none"), 2);
    cleanup.push(() => clearInterval(watch));
    sub.addPod(pod, p.boundEndpoint!);
    // The pod is idle (nothing live): the truncated replay alone must degrade it.
    await until(() => sub.ingest.accuracy(pod) === "degraded", "degraded by the truncated replay", 10_000);
    expect(sub.podStates()[0]?.degradedReason).toBe("replay-truncated");
    expect(await value(metrics.kvEvents.kvPodStale, { pod })).toBe(1);
    // 0–699, 700–1399, 1400–2099 cut after 700 each (no marker), then 2100–2149 and the marker.
    await until(
      () => settled(sub, pod, p.seq - 1n)() && sub.ingest.accuracy(pod) === "exact",
      "resumed to the end",
      20_000,
    );
    expect(server.starts).toEqual([0n, 700n, 1400n, 2100n]);
    expect(held(index, pod, batches)).toEqual(reference(pod, p, batches));
    expect(await value(metrics.kvEvents.kvReplays, { pod, result: "truncated" })).toBe(3);
    expect(await value(metrics.kvEvents.kvReplays, { pod, result: "complete" })).toBe(1);
    expect(await value(metrics.kvEvents.kvPodStale, { pod })).toBe(0);
    const warn = logs.filter((l) => l.level === "warn" && l.reason === "replay-truncated");
    expect(warn).toHaveLength(1);
    expect(warn[0]).toMatchObject({ pod, accuracy: "degraded", from: "0", batches: 700 });
    expect(logs.some((l) => l.msg === "kv-event state exact again" && l.pod === pod)).toBe(true);
    expect(seen.has("degraded")).toBe(true);
  });

  it("connect mode: a reconnected subscription replays from the last applied seq + 1", async () => {
    const pod = "127.0.0.1:8001";
    const router = new FakeReplayRouter();
    const replayAt = await router.bind();
    cleanup.push(() => router.close());
    const port = await freePort();
    const first = new KvEventPublisher({ topic: "kv@127.0.0.1@m" });
    await first.bind(`tcp://127.0.0.1:${port}`);
    cleanup.push(() => first.close());
    const { sub } = subscriber({ mode: "connect", replay: () => replayAt });
    await sub.start();
    sub.addPod(pod, `tcp://127.0.0.1:${port}`);
    await until(() => router.requests.length === 1, "replay on the first connection");
    expect(router.requests[0]!.start).toBe(0n);
    await router.replyAll(router.requests[0]!, []); // nothing buffered yet
    await first.publishUntil(() => sub.podStates().some((x) => x.podId === pod && x.replays === 0));
    const applied = BigInt(appliedSeq(sub, pod)!);

    // The pod's publisher goes away and comes back on the same port: ZeroMQ reconnects the SUB.
    first.close();
    const second = new KvEventPublisher({ topic: "kv@127.0.0.1@m", firstSeq: first.seq });
    cleanup.push(() => second.close());
    for (let attempt = 0; ; attempt++) {
      try {
        await second.bind(`tcp://127.0.0.1:${port}`);
        break;
      } catch (err) {
        if (attempt >= 50) throw err;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    await until(() => router.requests.length === 2, "replay on reconnection");
    expect(router.requests[1]!.start).toBe(applied + 1n);
  });

  it("without a replay socket: the gap degrades the pod (metric, log), cooldown spares the next one, then it heals", async () => {
    const pod = "10.1.0.3";
    const nothing = `tcp://127.0.0.1:${await freePort()}`;
    let enabled = false; // off while warming up, so a late first batch does not start the cooldown
    const { sub, metrics, logs } = subscriber({
      replay: () => (enabled ? nothing : null),
      kvEvents: { replayTimeoutMs: 100, replayCooldownMs: 3_600_000, healAfterMs: 200 },
    });
    await sub.start();
    const p = await simPublisher({ endpoint: sub.endpoint!, topic: `kv@${pod}@m`, replay: false });
    const batches: SimEventBatch[] = [];
    await warmUp(p, sub, pod, batches);
    enabled = true;
    const send = (drop: boolean) => {
      p.dropFraction = drop ? 1 : 0;
      p.publish({ ts: 1, events: [] });
    };
    expect(sub.ingest.accuracy(pod)).toBe("exact");
    send(true);
    send(false);
    await until(
      () => sub.ingest.accuracy(pod) === "degraded" && sub.podStates()[0]?.replays === 0,
      "degraded",
    );
    expect(await value(metrics.kvEvents.kvReplays, { pod, result: "timeout" })).toBe(1);
    expect(await value(metrics.kvEvents.kvPodStale, { pod })).toBe(1);
    expect(sub.podStates()[0]?.degradedReason).toBe("replay-failed");
    const warn = logs.find(
      (l) => l.msg === "kv-event state degraded: the pod's cached blocks count less until it recovers",
    );
    expect(warn).toMatchObject({ pod, reason: "replay-failed", level: "warn" });

    // The next gap comes while the endpoint cools down: no replay is tried, the batch applies at once.
    send(true);
    send(false);
    await until(() => appliedSeq(sub, pod) === String(p.seq - 1n), "applied without replay");
    expect(await value(metrics.kvEvents.kvReplays, { pod, result: "cooldown" })).toBe(1);
    expect(await value(metrics.kvEvents.kvReplays, { pod, result: "timeout" })).toBe(1);

    // Gap-free batches for healAfterMs: trusted again.
    const deadline = Date.now() + 10_000;
    while (sub.ingest.accuracy(pod) !== "exact") {
      if (Date.now() > deadline) throw new Error("never healed");
      send(false);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await value(metrics.kvEvents.kvPodStale, { pod })).toBe(0);
    expect(logs.some((l) => l.msg === "kv-event state exact again" && l.pod === pod)).toBe(true);
  });

  it("honours the cap on concurrent replays, and holds each pod's live batches until its replay ends", async () => {
    const routers = [new FakeReplayRouter(), new FakeReplayRouter(), new FakeReplayRouter()];
    const at = new Map<string, string>();
    for (const [i, r] of routers.entries()) {
      at.set(`10.2.0.${i}`, await r.bind());
      cleanup.push(() => r.close());
    }
    const { sub, index } = subscriber({
      replay: (id) => at.get(id) ?? null,
      kvEvents: { maxConcurrentReplays: 1 },
    });
    await sub.start();
    const pubs = [...at.keys()].map((pod) => {
      // Starting at seq 100: kvpick joined late, so each pod's first batch asks for a replay from 0.
      const pub = new KvEventPublisher({ topic: `kv@${pod}@m`, firstSeq: 100n });
      pub.connect(sub.endpoint!);
      cleanup.push(() => pub.close());
      return pub;
    });
    const requests = () => routers.reduce((n, r) => n + r.requests.length, 0);
    const deadline = Date.now() + 10_000;
    while (sub.ingest.replayStats()!.waiting < 2) {
      if (Date.now() > deadline) throw new Error("replays not queued");
      for (const [i, pub] of pubs.entries())
        await pub.publish([{ type: "BlockStored", hashes: [BigInt(1000 + i)] }]);
      await new Promise((r) => setTimeout(r, 10));
    }
    await until(() => requests() === 1, "the first replay request");
    expect(sub.ingest.replayStats()!.running).toBe(1);
    expect(index.stats().entries).toBe(0); // everything held
    const answered = new Set<FakeReplayRouter>();
    for (let served = 0; served < 3; served++) {
      await until(() => requests() === served + 1, `request ${served + 1}`);
      const r = routers.find((x) => x.requests.length === 1 && !x.socket.closed && !answered.has(x))!;
      answered.add(r);
      const i = routers.indexOf(r);
      // The ring (buffer_steps) reaches back to seq 99, one older block; then what the pod published live.
      const live = Array.from({ length: Number(pubs[i]!.seq - 100n) }, (_, k) => ({
        seq: 100n + BigInt(k),
        payload: encodeBatch([{ type: "BlockStored", hashes: [BigInt(1000 + i)] }]),
      }));
      await r.replyAll(r.requests[0]!, [
        { seq: 99n, payload: encodeBatch([{ type: "BlockStored", hashes: [BigInt(500 + i)] }]) },
        ...live,
      ]);
    }
    await until(() => sub.ingest.replayStats()!.running === 0, "all replays done");
    expect(sub.ingest.replayStats()!.peakRunning).toBe(1);
    for (const [i, pod] of [...at.keys()].entries()) {
      await until(
        () => index.matchPrefix(BigUint64Array.of(BigInt(1000 + i)), [pod]).blocks[0] === 1,
        "held applied",
      );
      expect(index.matchPrefix(BigUint64Array.of(BigInt(500 + i)), [pod]).blocks[0]).toBe(1);
      expect(sub.ingest.accuracy(pod)).toBe("exact");
    }
  });

  it("clears the pod when its publisher restarts (seq goes back), then follows the new incarnation", async () => {
    const pod = "10.1.0.4";
    let replayAt = "";
    const { sub, index, metrics } = subscriber({ replay: () => replayAt });
    await sub.start();
    const p = await simPublisher({ endpoint: sub.endpoint!, topic: `kv@${pod}@m` });
    replayAt = p.replayEndpoint!;
    const before: SimEventBatch[] = [];
    await warmUp(p, sub, pod, before);
    for (const b of stream(10, 17)) {
      before.push(b);
      p.publish(b);
    }
    await until(settled(sub, pod, p.seq - 1n), "caught up");
    expect(held(index, pod, before).length).toBeGreaterThan(0);
    await p.restart();
    const after: SimEventBatch[] = [];
    const deadline = Date.now() + 10_000;
    while ((await value(metrics.kvEvents.kvPublisherRestarts, { pod })) === 0) {
      if (Date.now() > deadline) throw new Error("restart not seen");
      const b = { ts: 1, events: [] };
      after.push(b);
      p.publish(b);
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const b of stream(5, 19)) {
      after.push(b);
      p.publish(b);
    }
    await until(settled(sub, pod, p.seq - 1n), "caught up after the restart");
    expect(held(index, pod, before)).toEqual([]);
    expect(held(index, pod, after)).toEqual(reference(pod, p, after));
    expect(sub.ingest.accuracy(pod)).toBe("exact");
  });

  it("after a complete replay that applied nothing, a new gap among the held batches is replayed too", async () => {
    const pod = "10.1.0.6";
    const router = new FakeReplayRouter();
    const replayAt = await router.bind();
    cleanup.push(() => router.close());
    const { sub, metrics } = subscriber({ replay: () => replayAt });
    await sub.start();
    const pub = new KvEventPublisher({ topic: `kv@${pod}@m` });
    pub.connect(sub.endpoint!);
    cleanup.push(() => pub.close());
    // Warm-up (a late first batch asks for a replay from 0: nothing buffered yet).
    await pub.publishUntil(() => appliedSeq(sub, pod) !== null || router.requests.length > 0);
    for (const r of router.requests) await router.reply(r, ["", END_SEQ, ""]);
    await until(settled(sub, pod, pub.seq - 1n), "warmed up");
    const n = router.requests.length;
    const a = pub.seq - 1n;
    const received = () => value(metrics.kvEvents.kvEventsReceived, { pod });
    pub.seq++; // a + 1 lost on the wire
    await pub.publish([{ type: "BlockStored", hashes: [501n] }]); // a + 2: gap → replay from a + 1
    await until(() => router.requests.length === n + 1, "the gap's replay");
    expect(router.requests[n]!.start).toBe(a + 1n);
    const before = await received();
    pub.seq++; // a + 3 lost too, while the replay runs
    await pub.publish([{ type: "BlockStored", hashes: [502n] }]); // a + 4: held
    const deadline = Date.now() + 10_000;
    while ((await received()) === before) {
      if (Date.now() > deadline) throw new Error("a + 4 not received");
      await new Promise((r) => setTimeout(r, 5));
    }
    // The ring had nothing of it: a complete replay that applied 0 batches. a + 2 then applies with a + 1
    // lost; a + 3 is a new gap past where that replay started: it is asked for, not given up.
    await router.reply(router.requests[n]!, ["", END_SEQ, ""]);
    await until(() => router.requests.length === n + 2, "the new gap replayed");
    expect(router.requests[n + 1]!.start).toBe(a + 3n);
    await router.reply(router.requests[n + 1]!, ["", END_SEQ, ""]);
    await until(settled(sub, pod, a + 4n), "released");
    expect(sub.podStates()[0]).toMatchObject({ accuracy: "degraded", degradedReason: "replay-incomplete" });
  });

  it("counts malformed replay replies, applies the good ones and keeps serving live batches", async () => {
    const pod = "10.1.0.5";
    const router = new FakeReplayRouter();
    const replayAt = await router.bind();
    cleanup.push(() => router.close());
    const { sub, index, metrics } = subscriber({ replay: () => replayAt });
    await sub.start();
    const pub = new KvEventPublisher({ topic: `kv@${pod}@m`, firstSeq: 10n });
    pub.connect(sub.endpoint!);
    cleanup.push(() => pub.close());
    const deadline = Date.now() + 10_000;
    while (router.requests.length === 0) {
      if (Date.now() > deadline) throw new Error("no replay request");
      await pub.publish([{ type: "BlockStored", hashes: [77n] }]);
      await new Promise((r) => setTimeout(r, 10));
    }
    const req = router.requests[0]!;
    expect(req.start).toBe(0n);
    const good = (h: bigint) => encodeBatch([{ type: "BlockStored", hashes: [h] }]);
    await router.reply(req, ["", seqFrame(0)]); // frames
    await router.reply(req, ["", Buffer.alloc(5), good(1n)]); // seq
    await router.reply(req, ["", seqFrame(1), Buffer.from([0xc1, 0x00])]); // payload
    await router.reply(req, ["", seqFrame(2), good(2n)]);
    await router.reply(req, ["", END_SEQ, ""]);
    // The held live batches start past seq 3: the replay made progress, so kvpick asks again from 3 — but
    // the ring has nothing more.
    await until(() => router.requests.length === 2, "the follow-up replay");
    expect(router.requests[1]!.start).toBe(3n);
    await router.reply(router.requests[1]!, ["", END_SEQ, ""]);
    await until(() => sub.podStates()[0]?.replays === 0, "replays done");
    expect(await value(metrics.kvEvents.kvEventsMalformed, { pod, reason: "replay-frames" })).toBe(1);
    expect(await value(metrics.kvEvents.kvEventsMalformed, { pod, reason: "replay-seq" })).toBe(1);
    expect(await value(metrics.kvEvents.kvEventsMalformed, { pod, reason: "replay-payload" })).toBe(1);
    expect(index.matchPrefix(BigUint64Array.of(2n), [pod]).blocks[0]).toBe(1);
    await until(
      () => index.matchPrefix(BigUint64Array.of(77n), [pod]).blocks[0] === 1,
      "held live batch applied",
    );
    // Seq 3..9 were neither replayed nor received, after seq 2 was applied: the pod may over-claim.
    expect(sub.podStates()[0]).toMatchObject({ accuracy: "degraded", degradedReason: "replay-incomplete" });
    await pub.publish([{ type: "BlockStored", hashes: [78n] }]);
    await until(
      () => index.matchPrefix(BigUint64Array.of(78n), [pod]).blocks[0] === 1,
      "live batches still flow",
    );
  });
});

/** Rebinding a port another socket just released can race its close: retry briefly. */
async function bindRetrying(sub: KvEvents): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await sub.start();
      return;
    } catch (err) {
      if (attempt >= 50) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
