// The shared index against a real redis-server: what the mirror writes, the lookup script reads back exactly
// as the in-memory index answers; entries expire; Redis going away and coming back is survived.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { encodeBatch, type EventSpec, seqFrame } from "../../test/support/kv-event-publisher.js";
import { assertRedisInstalled, type RedisServer, startRedisServer } from "../../test/support/redis-server.js";
import { createCacheView } from "../cache-view/cache-view.js";
import { parseConfig } from "../config/load.js";
import { KvEventIngest } from "../kv-events/ingest.js";
import { BlockIndex } from "../kv-index/block-index.js";
import { createLogger } from "../observability/logger.js";
import { Metrics } from "../observability/metrics.js";
import { createRedisSharedIndex, type RedisSharedIndex, redactUrl } from "./redis-shared-index.js";
import { until } from "../../test/support/until.js";

const WEIGHTS = { GPU: 1, CPU: 0.8 };
const HASH = { blockSize: 64, hashSeed: "42", hashAlgo: "sha256_cbor_64bit" as const };

/** Polls until `check` holds (the tests' one poll helper, test/support/until.ts). */
const eventually = until;

async function counter(metrics: Metrics, name: string, labels: Record<string, string>): Promise<number> {
  const m = metrics.registry.getSingleMetric(name);
  if (m === undefined) throw new Error(`no metric ${name}`);
  const v = (await m.get()).values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l));
  return v?.value ?? 0;
}

/** A replica's write side: index + ingest + mirror, and a Redis-only reader. */
interface Replica {
  index: BlockIndex;
  ingest: KvEventIngest;
  shared: RedisSharedIndex;
  metrics: Metrics;
  logs: Record<string, unknown>[];
  seq: Map<string, bigint>;
  send(pod: string, events: EventSpec[], seq?: bigint): void;
  /** Redis's answer alone (an empty local index merged with it). */
  redisMatch(chain: BigUint64Array, pods: string[]): Promise<{ blocks: number[]; weighted: number[] }>;
}

const cleanups: (() => Promise<void>)[] = [];

async function replica(url: string, redis: Record<string, unknown> = {}): Promise<Replica> {
  const config = parseConfig({
    tokenizer: { hashSeed: "42" },
    index: { mediumWeights: WEIGHTS, redis: { url, lookupTimeoutMs: 2000, ...redis } },
  });
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: "info",
    destination: { write: (s: string) => void logs.push(JSON.parse(s)) },
  });
  const metrics = new Metrics();
  const index = new BlockIndex({ maxEntries: 1 << 20, mediumWeights: WEIGHTS });
  const shared = createRedisSharedIndex({ config: config.index, index, logger, metrics });
  const ingest = new KvEventIngest({
    index,
    logger,
    recorder: metrics.kvEvents,
    hash: HASH,
    mirror: shared.mirror,
  });
  // A reader with an empty local index: its answers come from Redis alone.
  const readerMetrics = new Metrics();
  const readerIndex = new BlockIndex({ maxEntries: 1, mediumWeights: WEIGHTS });
  const reader = createRedisSharedIndex({
    config: config.index,
    index: readerIndex,
    logger,
    metrics: readerMetrics,
  });
  shared.start();
  reader.start();
  await eventually(() => shared.link.up && reader.link.up, "redis connections");
  const seq = new Map<string, bigint>();
  const r: Replica = {
    index,
    ingest,
    shared,
    metrics,
    logs,
    seq,
    send(pod, events, s) {
      const next = s ?? seq.get(pod) ?? 0n;
      seq.set(pod, next + 1n);
      ingest.handleMessage([
        Buffer.from(`kv@${pod}@m`),
        seqFrame(next),
        encodeBatch(events, { layout: "v0.10.2" }),
      ]);
    },
    async redisMatch(chain, pods) {
      const lookup = await createCacheView({ index: readerIndex, shared: reader.prefixSource }).lookupFor(
        chain,
      );
      const { blocks, weighted } = lookup.matchPrefix(chain, pods);
      return { blocks: [...blocks], weighted: [...weighted].map(round) };
    },
  };
  cleanups.push(
    () => shared.stop(0),
    () => reader.stop(0),
  );
  return r;
}

/** The read model over a replica's local index and its shared index, as kvpick serve builds it. */
const viewOf = (r: Replica) => createCacheView({ index: r.index, shared: r.shared.prefixSource });

const round = (x: number) => Math.round(x * 1e6) / 1e6;
const localMatch = (r: Replica, chain: BigUint64Array, pods: string[]) => {
  const { blocks, weighted } = r.index.matchPrefix(chain, pods);
  return { blocks: [...blocks], weighted: [...weighted].map(round) };
};

function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

/** Documents: chains sharing prefixes, values spread over all 64 bits (above 2^53 too). */
function documents(rnd: (n: number) => number, count: number, length: number): bigint[][] {
  const root = Array.from({ length }, (_, i) => (BigInt(i + 1) << 44n) ^ 0xf00d_0000_0000_0001n);
  return Array.from({ length: count }, (_, d) => {
    const shared = rnd(length);
    return root.map((h, i) => (i < shared ? h : h ^ (BigInt(d + 1) << 52n) ^ BigInt(rnd(1 << 30))));
  });
}

let server: RedisServer;

beforeAll(async () => {
  server = await startRedisServer();
});
afterEach(async () => {
  for (const close of cleanups.splice(0)) await close();
  await server.command(["FLUSHALL"]).catch(() => {});
});
afterAll(async () => {
  await server.stop();
});

describe("shared index in Redis", () => {
  it("answers exactly as the in-memory index after randomised event streams (stores, removals, media, clears)", async () => {
    for (const seed of [1, 2, 3]) {
      const r = await replica(server.url, { keyPrefix: `t${seed}:` });
      const rnd = rng(seed);
      const pods = ["10.0.0.1", "10.0.0.2", "10.0.0.3:8000", "10.0.0.4"];
      const media = ["GPU", "GPU", "CPU", "DISK"];
      const docs = documents(rnd, 12, 40);
      const stored: [string, string, bigint][] = [];
      for (let step = 0; step < 400; step++) {
        const pod = pods[rnd(pods.length)]!;
        const roll = rnd(100);
        if (roll < 55) {
          const doc = docs[rnd(docs.length)]!;
          const from = rnd(3) === 0 ? rnd(10) : 0;
          const hashes = doc.slice(from, from + 1 + rnd(30));
          const medium = media[rnd(media.length)]!;
          r.send(pod, [{ type: "BlockStored", hashes, medium }]);
          for (const h of hashes) stored.push([pod, medium, h]);
        } else if (roll < 90 && stored.length > 0) {
          const [p, medium, h] = stored.splice(rnd(stored.length), 1)[0]!;
          r.send(p, [{ type: "BlockRemoved", hashes: [h], medium }]);
        } else if (roll < 94) {
          r.send(pod, [{ type: "AllBlocksCleared" }]);
        } else if (roll < 97) {
          r.ingest.forgetPod(pod);
        } else {
          r.send(pod, [], 0n); // the publisher restarted: the pod is cleared
        }
        if (step % 50 === 0) await new Promise((res) => setImmediate(res)); // let flushes interleave
      }
      await r.shared.mirror.settled();
      expect(r.index.stats().entries).toBeGreaterThan(50);
      const queryPods = [...pods, "10.0.0.99"];
      for (const doc of docs) {
        for (const len of [1, 7, 40]) {
          const chain = BigUint64Array.from(doc.slice(0, len));
          expect(await r.redisMatch(chain, queryPods)).toEqual(localMatch(r, chain, queryPods));
        }
      }
      expect(await counter(r.metrics, "epp_redis_writes_total", { outcome: "failed" })).toBe(0);
      expect(await counter(r.metrics, "epp_redis_writes_total", { outcome: "written" })).toBeGreaterThan(0);
    }
  });

  it("stays exact when several replicas mirror the same pods (idempotent absolute writes)", async () => {
    const a = await replica(server.url);
    const b = await replica(server.url);
    const chain = [0xffff_ffff_ffff_fff1n, 0x8000_0000_0000_0002n, 3n, 4n];
    for (const r of [a, b]) {
      r.send("p1", [{ type: "BlockStored", hashes: chain, medium: "GPU" }]);
      r.send("p1", [{ type: "BlockStored", hashes: chain.slice(0, 2), medium: "GPU" }]); // duplicate copies
      r.send("p1", [{ type: "BlockRemoved", hashes: [chain[1]!], medium: "GPU" }]); // one copy left
    }
    await Promise.all([a.shared.mirror.settled(), b.shared.mirror.settled()]);
    const q = BigUint64Array.from(chain);
    expect(await a.redisMatch(q, ["p1"])).toEqual({ blocks: [4], weighted: [4] });
    b.send("p1", [{ type: "BlockRemoved", hashes: [chain[1]!], medium: "GPU" }]);
    await b.shared.mirror.settled();
    expect(await a.redisMatch(q, ["p1"])).toEqual({ blocks: [1], weighted: [1] });
  });

  it("clears a large pod in bounded steps and keeps what it stores after the clear", async () => {
    const r = await replica(server.url);
    const many = Array.from({ length: 2500 }, (_, i) => BigInt(i + 1) * 0x1_0000_0001n);
    const q = BigUint64Array.from(many.slice(0, 5));
    // A batch of more than 2,048 blocks is applied in slices over later loop turns, and so is what follows it
    // for that pod: wait for the local index to hold it before waiting for the mirror's writes.
    const applied = (want: number[]) =>
      eventually(() => localMatch(r, q, ["big", "small"]).blocks.join() === want.join(), `local ${want}`);
    r.send("big", [{ type: "BlockStored", hashes: many, medium: "GPU" }]);
    r.send("small", [{ type: "BlockStored", hashes: many.slice(0, 3), medium: "GPU" }]);
    const all = BigUint64Array.from(many);
    await eventually(() => localMatch(r, all, ["big"]).blocks[0] === 2500, "the 2,500-block batch applied");
    await r.shared.mirror.settled();
    r.send("big", [{ type: "AllBlocksCleared" }]);
    r.send("big", [{ type: "BlockStored", hashes: many.slice(0, 2), medium: "CPU" }]);
    await applied([2, 3]);
    await r.shared.mirror.settled();
    expect(await r.redisMatch(q, ["big", "small"])).toEqual({ blocks: [2, 3], weighted: [1.6, 3] });
    expect(await r.redisMatch(BigUint64Array.from(many.slice(2000)), ["big"])).toEqual({
      blocks: [0],
      weighted: [0],
    });
    expect(await counter(r.metrics, "epp_redis_pod_clears_total", { outcome: "done" })).toBe(1);
    // Only "small"'s 3 blocks, "big"'s 2 and their two pod sets remain.
    expect(await server.command(["DBSIZE"])).toBe(":5");
  });

  it("expires entries that are not re-stored within ttlSeconds", async () => {
    const r = await replica(server.url, { ttlSeconds: 1 });
    r.send("p1", [{ type: "BlockStored", hashes: [1n, 2n], medium: "GPU" }]);
    await r.shared.mirror.settled();
    const q = BigUint64Array.of(1n, 2n);
    expect((await r.redisMatch(q, ["p1"])).blocks).toEqual([2]);
    await eventually(async () => (await server.command(["DBSIZE"])) === ":0", "keys to expire", 15_000);
    expect((await r.redisMatch(q, ["p1"])).blocks).toEqual([0]);
    expect(r.index.matchPrefix(q, ["p1"]).blocks[0]).toBe(2); // the local index keeps its own state
  });

  it("drops and counts changes past maxPendingWrites", async () => {
    const r = await replica(server.url, { maxPendingWrites: 10 });
    r.send("p1", [
      { type: "BlockStored", hashes: Array.from({ length: 100 }, (_, i) => BigInt(i + 1)), medium: "GPU" },
    ]);
    await r.shared.mirror.settled();
    expect(await counter(r.metrics, "epp_redis_writes_total", { outcome: "dropped" })).toBe(90);
    expect(await counter(r.metrics, "epp_redis_writes_total", { outcome: "written" })).toBe(10);
  });

  it("routes on the local index when Redis is slow, counting the timeouts", async () => {
    const r = await replica(server.url, { lookupTimeoutMs: 30 });
    r.send("p1", [{ type: "BlockStored", hashes: [7n, 8n], medium: "GPU" }]);
    await r.shared.mirror.settled();
    await server.command(["CLIENT", "PAUSE", "600", "ALL"]);
    const lookup = await viewOf(r).lookupFor(BigUint64Array.of(7n, 8n));
    expect(lookup).toBe(r.index);
    expect(await counter(r.metrics, "epp_redis_lookups_total", { outcome: "timeout" })).toBe(1);
    await server.command(["CLIENT", "UNPAUSE"]);
  });

  it("keeps routing locally while Redis is down, reports it, and re-synchronises when it returns", async () => {
    const r = await replica(server.url);
    r.send("p1", [{ type: "BlockStored", hashes: [11n, 12n, 13n], medium: "GPU" }]);
    await r.shared.mirror.settled();
    await server.kill();
    await eventually(() => !r.shared.link.up, "the link to notice");
    expect(await counter(r.metrics, "epp_redis_up", {})).toBe(0);
    expect(r.logs.some((l) => l.level === "warn" && /redis: unreachable/.test(String(l.msg)))).toBe(true);

    // Changes while down stay local (counted as dropped for Redis); lookups go local at once.
    r.send("p1", [{ type: "BlockStored", hashes: [14n], medium: "CPU" }]);
    r.send("p2", [{ type: "BlockStored", hashes: [11n], medium: "GPU" }]);
    expect(await counter(r.metrics, "epp_redis_writes_total", { outcome: "dropped" })).toBe(2);
    const q = BigUint64Array.of(11n, 12n, 13n, 14n);
    expect(await viewOf(r).lookupFor(q)).toBe(r.index);
    expect(await counter(r.metrics, "epp_redis_lookups_total", { outcome: "down" })).toBe(1);

    // A fresh, empty Redis on the same port: the mirror rewrites the whole local index into it.
    await server.restart();
    await eventually(() => r.shared.link.up, "the link to reconnect", 15_000);
    await r.shared.mirror.settled();
    expect(await counter(r.metrics, "epp_redis_up", {})).toBe(1);
    expect(await r.redisMatch(q, ["p1", "p2"])).toEqual({ blocks: [4, 1], weighted: [3.8, 1] });
    expect(r.logs.some((l) => /reachable again/.test(String(l.msg)))).toBe(true);
  });
});

describe("the Redis test set-up", () => {
  it("fails with the install command when redis-server is missing, never skips", () => {
    const path = process.env.PATH;
    process.env.PATH = "/nonexistent";
    try {
      expect(() => assertRedisInstalled()).toThrow(/apt-get install -y redis-server/);
    } finally {
      process.env.PATH = path;
    }
    expect(() => assertRedisInstalled()).not.toThrow();
  });
});

describe("redactUrl", () => {
  it("keeps the password out of logs", () => {
    expect(redactUrl("redis://:s3cret@10.0.0.9:6379/2")).toBe("redis://:***@10.0.0.9:6379/2");
    expect(redactUrl("rediss://kvpick:s3cret@redis:6380")).toBe("rediss://kvpick:***@redis:6380");
    expect(redactUrl("redis://10.0.0.9:6379")).toBe("redis://10.0.0.9:6379");
  });
});
