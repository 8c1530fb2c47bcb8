// Active-active replicas in bind mode sharing one real Redis (index.redis): pod A publishes its KV events
// only to replica 1, pod B only to replica 2, yet both replicas route each conversation to the pod that
// cached it; a restarted replica routes from Redis at once (warm restart); with Redis killed the replicas
// keep routing on what they hold locally, say so, and recover when it returns.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { BlockHasher } from "../../src/kv-index/block-hash.js";
import { createLogger } from "../../src/observability/logger.js";
import { TokenizationService } from "../../src/tokenization/tokenization-service.js";
import { FakeVllmPod } from "../support/fake-vllm-pod.js";
import { until } from "../support/until.js";
import { KvEventPublisher } from "../support/kv-event-publisher.js";
import { type Replica, startReplica } from "../support/kvpick-replica.js";
import { type RedisServer, startRedisServer } from "../support/redis-server.js";

const conversation = (topic: string, n: number) => {
  const system =
    `You are the ${topic} desk assistant of Example Corp. ` +
    Array.from(
      { length: n },
      (_, i) => `${topic} rule ${i}: limit ${i + 3} units, review after ${i + 7} days.`,
    ).join(" ");
  const first = [
    { role: "system", content: system },
    { role: "user", content: `A first question about ${topic}?` },
  ];
  return {
    first: { model: "Qwen3-32B", messages: first },
    followUp: {
      model: "Qwen3-32B",
      messages: [...first, { role: "assistant", content: "Yes." }, { role: "user", content: "And then?" }],
    },
  };
};

const IDLE = { waiting: 0, running: 0, kvCacheUsage: 0.1 };
// Busier by one queued request: enough for load alone to pick the other pod, not enough to beat a cached
// prefix of ~90 % of the prompt (kvpick's TTFT cost: one queued prompt < recomputing this one elsewhere).
const BUSY = { waiting: 1, running: 0, kvCacheUsage: 0.2 };

async function metric(r: Replica, name: string, labels = ""): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${r.ports.metricsPort}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? Number.NaN : Number(line.split(" ")[1]);
}

describe("active-active replicas in bind mode sharing a Redis index", () => {
  let redis: RedisServer;
  const pods: FakeVllmPod[] = [];
  const publishers: KvEventPublisher[] = [];
  let r1: Replica;
  let r2: Replica;
  let tokenizer: TokenizationService;
  const hasher = new BlockHasher({ scheme: "sha256_cbor_64bit", hashSeed: "42", blockSize: 64 });
  const convA = conversation("travel", 150);
  const convB = conversation("payroll", 150);
  const redisConfig = () => ({
    index: { redis: { url: redis.url, lookupTimeoutMs: 2000, keyPrefix: "pool-a:" } },
  });

  /** Pod `pod` caches `body`'s full blocks and says so to the replica its publisher dials. */
  async function cache(pub: KvEventPublisher, replica: Replica, podIp: string, body: object) {
    const { tokenIds } = await tokenizer.tokenize("Qwen3-32B", "/v1/chat/completions", body as never);
    const chain = hasher.hash(tokenIds);
    expect(chain.length).toBeGreaterThan(15);
    await pub.publishUntil(() => replica.app.kvEvents.podStates().some((s) => s.podId === podIp));
    await pub.publish([{ type: "BlockStored", hashes: [...chain], medium: "GPU" }]);
    await until(() => replica.app.index.hasPod(podIp), "blocks indexed");
    await replica.app.sharedIndex!.mirror.settled();
  }

  /** Sets the loads and waits until every running replica has scraped them. */
  async function loads(a: typeof IDLE, b: typeof IDLE, replicas: Replica[]) {
    pods[0]!.load = a;
    pods[1]!.load = b;
    for (const r of replicas) await r.freshLoads(pods);
  }

  beforeAll(async () => {
    redis = await startRedisServer();
    pods.push(await new FakeVllmPod("127.0.0.31").start(), await new FakeVllmPod("127.0.0.32").start());
    tokenizer = new TokenizationService({
      config: parseConfig({}).tokenizer,
      logger: createLogger({ level: "silent" }),
    });
    r1 = await startReplica(pods, redisConfig());
    r2 = await startReplica(pods, redisConfig());
    await until(() => r1.app.sharedIndex!.link.up && r2.app.sharedIndex!.link.up, "redis connections");
    // Bind mode: each pod's PUB dials ONE replica (as behind a Service), so each replica's index is partial.
    publishers.push(new KvEventPublisher({ topic: `kv@${pods[0]!.ip}@Qwen3-32B` }));
    publishers.push(new KvEventPublisher({ topic: `kv@${pods[1]!.ip}@Qwen3-32B` }));
    publishers[0]!.connect(r1.ports.kvEventsEndpoint!);
    publishers[1]!.connect(r2.ports.kvEventsEndpoint!);
    await cache(publishers[0]!, r1, pods[0]!.ip, convA.first);
    await cache(publishers[1]!, r2, pods[1]!.ip, convB.first);
  });

  afterAll(async () => {
    for (const p of publishers) p.close();
    await r1?.stop();
    await r2?.stop();
    await tokenizer?.stop();
    await Promise.all(pods.map((p) => p.close()));
    await redis?.stop();
  });

  it("each replica holds only its own pod locally, Redis holds both", () => {
    expect(r1.app.index.hasPod(pods[0]!.ip)).toBe(true);
    expect(r1.app.index.hasPod(pods[1]!.ip)).toBe(false);
    expect(r2.app.index.hasPod(pods[1]!.ip)).toBe(true);
    expect(r2.app.index.hasPod(pods[0]!.ip)).toBe(false);
  });

  it("both replicas route each conversation to the pod that cached it, even when that pod is busier", async () => {
    await loads(IDLE, BUSY, [r1, r2]);
    expect(await r1.route(convB.followUp, "b-on-1")).toBe(pods[1]!.address); // known to replica 1 via Redis only
    expect(await r2.route(convB.followUp, "b-on-2")).toBe(pods[1]!.address);
    await loads(BUSY, IDLE, [r1, r2]);
    expect(await r1.route(convA.followUp, "a-on-1")).toBe(pods[0]!.address);
    expect(await r2.route(convA.followUp, "a-on-2")).toBe(pods[0]!.address); // via Redis only
    const line = r1.logs.find((l) => l["x-request-id"] === "b-on-1")!;
    expect(line.prefixMatchBlocks as number).toBeGreaterThan((line.totalBlocks as number) * 0.8);
    expect(await metric(r1, "epp_redis_up")).toBe(1);
    expect(await metric(r1, "epp_redis_lookups_total", '{outcome="ok"}')).toBeGreaterThanOrEqual(2);
  });

  it("a restarted replica with an empty local index routes from Redis at once (warm restart)", async () => {
    await r1.stop();
    publishers[0]!.close(); // pod A's stream is gone with the old replica 1
    r1 = await startReplica(pods, redisConfig());
    await until(() => r1.app.sharedIndex!.link.up, "redis connection");
    expect(r1.app.index.stats().entries).toBe(0);
    await loads(BUSY, IDLE, [r1, r2]);
    expect(await r1.route(convA.followUp, "warm-a")).toBe(pods[0]!.address);
    await loads(IDLE, BUSY, [r1, r2]);
    expect(await r1.route(convB.followUp, "warm-b")).toBe(pods[1]!.address);
  });

  it("keeps routing on local state while Redis is down, reports it, and recovers when it returns", async () => {
    await redis.kill();
    await until(() => !r1.app.sharedIndex!.link.up && !r2.app.sharedIndex!.link.up, "replicas to notice");
    expect(await metric(r2, "epp_redis_up")).toBe(0);
    expect(r2.logs.some((l) => l.level === "warn" && /redis: unreachable/.test(String(l.msg)))).toBe(true);

    // Replica 2 still holds pod B locally: B's conversation still goes to B. Pod A is known to nobody now
    // (its stream died with the old replica 1), so A's conversation goes by load, to the idle pod B.
    await loads(BUSY, IDLE, [r1, r2]);
    expect(await r2.route(convA.followUp, "down-a")).toBe(pods[1]!.address);
    await loads(IDLE, BUSY, [r1, r2]);
    expect(await r2.route(convB.followUp, "down-b")).toBe(pods[1]!.address);
    expect(await r1.route(convB.followUp, "down-b-on-1")).toBe(pods[0]!.address); // replica 1 never had B
    expect(await metric(r1, "epp_redis_lookups_total", '{outcome="down"}')).toBeGreaterThanOrEqual(1);

    // A fresh, empty Redis: replica 2 re-writes its local index into it, and replica 1 sees pod B again.
    await redis.restart();
    await until(
      () => r1.app.sharedIndex!.link.up && r2.app.sharedIndex!.link.up,
      "replicas to reconnect",
      20_000,
    );
    await r2.app.sharedIndex!.mirror.settled();
    expect(await metric(r1, "epp_redis_up")).toBe(1);
    expect(await r1.route(convB.followUp, "recovered-b-on-1")).toBe(pods[1]!.address);
    expect(r1.logs.some((l) => /redis: reachable again/.test(String(l.msg)))).toBe(true);
  });
});
