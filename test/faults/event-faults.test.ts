// Faults on the KV-event path, against a real `kvpick serve` process fed by simulated vLLM pods: lost
// batches, a publisher restart, an event flood from a pool member, and a flood of malformed messages. For
// each: kvpick stays up, every request is answered, memory stays bounded, and the hit rate the pods report
// returns to its level before the fault.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeVllmPod } from "../support/fake-vllm-pod.js";
import { FaultStack, note } from "../support/fault-stack.js";
import { KvEventPublisher } from "../support/kv-event-publisher.js";

const customers = (tag: string, n = 8) => Array.from({ length: n }, (_, i) => `${tag}-customer-${i}`);
const CAP = 60_000;

describe("KV-event faults", () => {
  let stack: FaultStack;
  let flooder: FakeVllmPod;

  beforeAll(async () => {
    // A pool member that serves only /metrics, so loaded that it is never picked: the flood publishes under
    // its identity (events are accepted only from pool members).
    flooder = await new FakeVllmPod("127.0.0.90").start();
    flooder.load = { waiting: 500, running: 256, kvCacheUsage: 1 };
    stack = await FaultStack.start({
      pods: 3,
      extraEndpoints: [flooder.address],
      serveArgs: [`--config-text={"index":{"maxEntries":${CAP}}}`],
    });
  });

  afterAll(async () => {
    await stack?.close();
    await flooder?.close();
  });

  const setFaults = (faults: Record<string, number>) =>
    Promise.all(
      stack.cluster.pods.map((p) =>
        fetch(`http://${p.address}/sim/faults`, { method: "POST", body: JSON.stringify(faults) }),
      ),
    );

  /** A few waves after the fault is gone; the last must be back near the baseline. */
  const recovers = async (who: readonly string[], before: number) =>
    expect((await stack.recovery(who, before)).hitRate).toBeGreaterThanOrEqual(before - 0.05);
  const baseline = (who: readonly string[]) => stack.baseline(who);

  it("survives lost event batches, recovers them by replay, and routes well again", async () => {
    const who = customers("drop");
    const before = await baseline(who);
    const gapsBefore = await stack.metric("epp_kv_event_seq_gaps_total");
    const replayedBefore = await stack.metric("epp_kv_replayed_batches_total");

    // Every batch is lost on the wire while new customers arrive: kvpick cannot learn where they went.
    await setFaults({ dropEventFraction: 1 });
    const fresh = customers("drop-new");
    for (let i = 0; i < 2; i++) {
      const w = await stack.wave(fresh);
      expect(w.statuses.get(200)).toBe(fresh.length);
      note("during drops, hit rate", w.hitRate.toFixed(3));
    }
    await setFaults({ dropEventFraction: 0 });
    // The next batch each pod sends reveals the gap; kvpick replays the lost ones from the pod's ring.
    await stack.wave(customers("drop-other", 6));
    expect(await stack.metric("epp_kv_event_seq_gaps_total")).toBeGreaterThan(gapsBefore);
    expect(await stack.metric("epp_kv_replayed_batches_total")).toBeGreaterThan(replayedBefore);
    expect(stack.alive).toBe(true);
    await recovers(fresh, before);
  });

  it("clears a pod whose publisher restarted and routes well again", async () => {
    const who = customers("restart");
    const before = await baseline(who);
    const pod = stack.cluster.pods[0]!;
    const restartsBefore = await stack.metric("epp_kv_event_publisher_restarts_total");
    await fetch(`http://${pod.address}/sim/restart`, { method: "POST" });
    // The restarted engine's first batch (seq 0) is what tells kvpick.
    const w = await stack.wave(who);
    expect(w.statuses.get(200)).toBe(who.length);
    await stack.wave(customers("restart-other", 4));
    expect(await stack.metric("epp_kv_event_publisher_restarts_total")).toBeGreaterThan(restartsBefore);
    await recovers(who, before);
  });

  it("bounds memory and keeps routing through an event flood at 100× the normal rate", async () => {
    const who = customers("flood");
    const before = await baseline(who);
    // Normal rate: batches per second while a wave runs.
    const b0 = await stack.metric("epp_kv_event_batches_received_total");
    const t0 = performance.now();
    await stack.wave(customers("flood-rate"));
    const normalRate =
      ((await stack.metric("epp_kv_event_batches_received_total")) - b0) / ((performance.now() - t0) / 1000);

    const pub = new KvEventPublisher({ topic: `kv@${flooder.ip}@Qwen3-32B` });
    pub.connect(stack.kvEndpoint);
    const seen = async () =>
      (await stack.metric("epp_kv_event_batches_received_total", { pod: flooder.ip })) > 0;
    let ready = false;
    const poll = setInterval(() => void seen().then((v) => (ready = v)), 20);
    await pub.publishUntil(() => ready, 10_000);
    clearInterval(poll);

    const rssBefore = stack.rssBytes();
    const evictionsBefore = await stack.metric("epp_kv_index_evictions_total");
    const floodSeconds = 2;
    let sent = 0;
    let h = BigInt(`0x${randomBytes(8).toString("hex")}`);
    // Distinct tokens per batch: with token keys (kvEvents.keys auto, which switches this pod once its random
    // hashes disagree with kvpick's) identical token blocks would be one key, and nothing would grow.
    const tokensOf = (batch: number) =>
      Array.from({ length: 16 * 64 }, (_, i) => (i * 7919 + batch) % 150_000);
    const requests = (async () => {
      const w = await stack.wave(who);
      return w;
    })();
    const started = performance.now();
    while (performance.now() - started < floodSeconds * 1000) {
      const hashes: bigint[] = [];
      for (let i = 0; i < 16; i++) {
        h = (h * 6364136223846793005n + 1442695040888963407n) & (2n ** 64n - 1n);
        hashes.push(h);
      }
      await pub.publish([
        { type: "BlockStored", hashes, parent: null, tokenIds: tokensOf(sent), blockSize: 64 },
      ]);
      sent++;
    }
    const floodRate = sent / floodSeconds;
    const during = await requests;
    expect(during.statuses.get(200)).toBe(who.length);
    // Eviction is fair between pods: the flood evicts the flooder's own entries, not the honest pods'.
    expect(during.hitRate).toBeGreaterThanOrEqual(before - 0.05);
    pub.close();
    await stack.settle();

    note(
      "normal batches/s",
      normalRate.toFixed(1),
      "flood batches/s",
      floodRate.toFixed(0),
      "during-flood hit rate",
      during.hitRate.toFixed(3),
    );
    note(
      "entries",
      await stack.metric("epp_kv_index_entries"),
      "rss delta MB",
      ((stack.rssBytes() - rssBefore) / 2 ** 20).toFixed(1),
    );
    expect(floodRate).toBeGreaterThanOrEqual(100 * Math.max(normalRate, 1));
    expect(stack.alive).toBe(true);
    expect(await stack.metric("epp_kv_index_entries")).toBeLessThanOrEqual(CAP);
    expect(await stack.metric("epp_kv_index_evictions_total")).toBeGreaterThan(evictionsBefore);
    // Bounded: the cap holds the index to a few MB whatever was sent; allow the allocator generous slack.
    expect(stack.rssBytes() - rssBefore).toBeLessThan(256 * 1024 * 1024);
    await recovers(who, before);
  });

  it("counts a flood of malformed messages, leaves the index untouched and keeps routing", async () => {
    const who = customers("garbage");
    const before = await baseline(who);
    const pub = new KvEventPublisher({ topic: `kv@${flooder.ip}@Qwen3-32B` });
    pub.connect(stack.kvEndpoint);
    // Slow joiner: valid empty batches until kvpick hears them (they add no entries).
    const received = await stack.metric("epp_kv_event_batches_received_total", { pod: flooder.ip });
    let ready = false;
    const poll = setInterval(
      () =>
        void stack
          .metric("epp_kv_event_batches_received_total", { pod: flooder.ip })
          .then((v) => (ready = v > received)),
      20,
    );
    await pub.publishUntil(() => ready, 10_000);
    clearInterval(poll);

    const entries = await stack.metric("epp_kv_index_entries");
    const malformedBefore = await stack.metric("epp_kv_events_malformed_total");
    const topic = `kv@${flooder.ip}@Qwen3-32B`;
    const N = 20_000;
    for (let i = 0; i < N; i++) {
      const kind = i % 4;
      const frames: (string | Uint8Array)[] =
        kind === 0
          ? [topic, randomBytes(8), randomBytes(1 + (i % 200))] // undecodable payload
          : kind === 1
            ? [topic, randomBytes(3), randomBytes(20)] // short seq frame
            : kind === 2
              ? [topic] // wrong frame count
              : [topic, randomBytes(8), Buffer.from([0x93, 0xcb, 1, 2, 3])]; // truncated msgpack
      await pub.sendRaw(frames);
    }
    const until = Date.now() + 10_000;
    while (
      (await stack.metric("epp_kv_events_malformed_total")) - malformedBefore < N * 0.99 &&
      Date.now() < until
    )
      await stack.settle();
    pub.close();
    expect((await stack.metric("epp_kv_events_malformed_total")) - malformedBefore).toBeGreaterThanOrEqual(
      N * 0.99,
    );
    expect(await stack.metric("epp_kv_index_entries")).toBe(entries);
    expect(stack.alive).toBe(true);
    await recovers(who, before);
  });
});
