// Real ZeroMQ round trips on loopback: a vLLM-format PUB → kvpick's SUB, in both deployment modes.
import { afterEach, describe, expect, it } from "vitest";
import { loadVector } from "../../test/support/golden.js";
import { KvEventPublisher, seqFrame } from "../../test/support/kv-event-publisher.js";
import { configSchema } from "../config/schema.js";
import { BlockIndex } from "../kv-index/block-index.js";
import { createLogger } from "../observability/logger.js";
import { Registry } from "prom-client";
import { KvEventsMetrics } from "../observability/kv-events-metrics.js";
import { createKvEvents, type KvEvents } from "./create-kv-events.js";
import { defaultEndpoint } from "./subscriber.js";
import { until } from "../../test/support/until.js";

const golden = loadVector<{ layouts: { messages: { frames_hex: string[] }[] }[] }>(
  "vllm-kv-event-frames.json",
);
const V0100 = [334609804919786575n, 11752632418425793902n, 9951355432383428481n];

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function make(mode: "bind" | "connect") {
  const config = configSchema.parse({ kvEvents: { mode, endpoint: "tcp://127.0.0.1:*" } });
  const index = new BlockIndex(config.index);
  const metrics = new KvEventsMetrics(new Registry());
  const sub = createKvEvents({
    config: config.kvEvents,
    hash: { hashAlgo: "sha256_cbor_64bit", hashSeed: "42", blockSize: 64 },
    index,
    logger: createLogger({ level: "silent" }),
    recorder: metrics,
  });
  cleanup.push(() => sub.stop(0));
  return { sub, index, metrics };
}

function publisher(topic: string) {
  const pub = new KvEventPublisher({ topic });
  cleanup.push(() => pub.close());
  return pub;
}

/** Polls a condition every 5 ms; bounded so a broken socket fails the test instead of hanging it. */
const waitFor = (cond: () => boolean, what: string, timeoutMs = 5000) => until(cond, what, timeoutMs, 5);

const received = (sub: KvEvents, pod: string) => () => sub.podStates().some((s) => s.podId === pod);
const blocks = (index: BlockIndex, pod: string, chain = V0100) =>
  index.matchPrefix(BigUint64Array.from(chain), [pod]).blocks[0];

describe("KvEvents, bind mode", () => {
  it("fills the index from vLLM publishers that connect to it, naming pods by topic", async () => {
    const { sub, index } = make("bind");
    await sub.start();
    const endpoint = sub.endpoint!;
    expect(endpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    const a = publisher("kv@10.0.0.1@Qwen3-32B");
    const b = publisher("kv@10.0.0.2:8000@Qwen3-32B");
    a.connect(endpoint);
    b.connect(endpoint);
    await a.publishUntil(received(sub, "10.0.0.1"));
    await b.publishUntil(received(sub, "10.0.0.2:8000"));
    // The exact golden bytes of a v0.10.0 pod (its own seq numbers restart at 0: a restart, then applied).
    const [stored] = golden.layouts[0]!.messages;
    await a.sendRaw(stored!.frames_hex.map((h) => Buffer.from(h, "hex")));
    await b.publish([{ type: "BlockStored", hashes: V0100.slice(0, 2) }]);
    await waitFor(
      () => blocks(index, "10.0.0.1") === 3 && blocks(index, "10.0.0.2:8000") === 2,
      "both pods indexed",
    );
    const state = sub.podStates().find((s) => s.podId === "10.0.0.1")!;
    expect(state).toMatchObject({ model: "Qwen3-32B", hashChecks: 1, hashMismatches: 0 });
    sub.removePod("10.0.0.1");
    expect(blocks(index, "10.0.0.1")).toBe(0);
    expect(blocks(index, "10.0.0.2:8000")).toBe(2);
  });

  it("survives fuzzed and truncated messages on the socket, leaving the index unchanged", async () => {
    const { sub, index, metrics } = make("bind");
    await sub.start();
    const pub = publisher("kv@10.0.0.3@m");
    pub.connect(sub.endpoint!);
    await pub.publishUntil(received(sub, "10.0.0.3"));
    await pub.publish([{ type: "BlockStored", hashes: V0100 }]);
    await waitFor(() => blocks(index, "10.0.0.3") === 3, "first store");
    const before = index.stats();
    let seed = 99;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => rnd(256)));
    const good = golden.layouts[0]!.messages[1]!.frames_hex.map((h) => Buffer.from(h, "hex"));
    let sent = 0;
    for (let i = 0; i < 300; i++) {
      const kind = rnd(4);
      const topic = Buffer.from(rnd(2) ? "kv@10.0.0.3@m" : `kv@${bytes(3).toString("hex")}`);
      let frames: Buffer[];
      if (kind === 0) frames = [topic, ...Array.from({ length: rnd(5) }, () => bytes(rnd(20)))];
      else if (kind === 1) frames = [topic, seqFrame(1000 + i), bytes(1 + rnd(60))];
      else if (kind === 2) frames = [topic, seqFrame(1000 + i), good[2]!.subarray(0, rnd(good[2]!.length))];
      else frames = [topic, bytes([0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11][rnd(11)]!), good[2]!]; // never 8 bytes
      if (frames.length === 3 && kind === 1 && rnd(2)) frames[2]![0] = 0x93; // looks like a batch
      await pub.sendRaw(frames);
      sent++;
    }
    // A valid message after the noise proves the loop is alive and ordered after it.
    await pub.sendRaw(["kv@10.0.0.3@m", seqFrame(5000), good[2]!]);
    await waitFor(() => blocks(index, "10.0.0.3") === 2, "the valid removal after the fuzz");
    expect(index.stats().entries).toBe(before.entries - 1);
    const malformed = (await metrics.kvEventsMalformed.get()).values.reduce((n, v) => n + v.value, 0);
    expect(malformed).toBeGreaterThan(sent / 2);
    expect(malformed).toBeLessThanOrEqual(sent);
  });
});

describe("KvEvents, connect mode", () => {
  it("dials each pod's bound publisher and names entries by the caller's pod id", async () => {
    const { sub, index, metrics } = make("connect");
    await sub.start();
    const pub = publisher("kv@10.1.1.1@Qwen3-32B"); // the topic's pod is ignored in connect mode
    const address = await pub.bind();
    sub.addPod("127.0.0.1:8000", address);
    expect(sub.connectedPods()).toEqual(["127.0.0.1:8000"]);
    await pub.publishUntil(received(sub, "127.0.0.1:8000"));
    await pub.publish([{ type: "BlockStored", hashes: V0100, medium: "CPU" }], { layout: "map" });
    await pub.publish([{ type: "BlockStored", hashes: V0100.slice(0, 1), medium: "GPU" }], { layout: "map" });
    await waitFor(() => index.stats().entries === 4, "entries from the connected pod");
    const r = index.matchPrefix(BigUint64Array.from(V0100), ["127.0.0.1:8000", "10.1.1.1"]);
    expect([...r.blocks]).toEqual([3, 0]);
    expect(r.weighted[0]).toBeCloseTo(1 + 0.8 + 0.8);
    sub.removePod("127.0.0.1:8000");
    expect(sub.connectedPods()).toEqual([]);
    expect(index.stats().entries).toBe(0);
    expect((await metrics.kvEventsReceived.get()).values[0]?.labels.pod).toBe("127.0.0.1:8000");
  });

  it("derives the default endpoint from the pod id", () => {
    expect(defaultEndpoint("10.0.0.1:8000", 5557)).toBe("tcp://10.0.0.1:5557");
    expect(defaultEndpoint("10.0.0.1", 5557)).toBe("tcp://10.0.0.1:5557");
    expect(defaultEndpoint("[fd00::1]:8000", 5557)).toBe("tcp://[fd00::1]:5557");
    expect(defaultEndpoint("fd00::1", 5557)).toBe("tcp://[fd00::1]:5557");
  });
});
