// Active-active replicas in connect mode, without Redis: every replica subscribes to every pod's bound
// publisher, so each builds the same index from the same events and picks the same pod for the same request.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { BlockHasher } from "../../src/kv-index/block-hash.js";
import { createLogger } from "../../src/observability/logger.js";
import { TokenizationService } from "../../src/tokenization/tokenization-service.js";
import { FakeVllmPod } from "../support/fake-vllm-pod.js";
import { until } from "../support/until.js";
import { freePort } from "../support/free-port.js";
import { KvEventPublisher } from "../support/kv-event-publisher.js";
import { type Replica, startReplica } from "../support/kvpick-replica.js";

const body = (topic: string, turns: number) => {
  const system = Array.from({ length: 90 }, (_, i) => `${topic} clause ${i}: allowance ${i * 3} EUR.`).join(
    " ",
  );
  const messages = [{ role: "system", content: system }];
  for (let t = 0; t < turns; t++)
    messages.push({ role: "user", content: `question ${t}` }, { role: "assistant", content: `answer ${t}` });
  messages.push({ role: "user", content: "and now?" });
  return { model: "Qwen3-32B", messages };
};

describe("active-active replicas in connect mode (no shared index)", () => {
  const pods: FakeVllmPod[] = [];
  const publishers: KvEventPublisher[] = [];
  const replicas: Replica[] = [];
  let tokenizer: TokenizationService;
  const hasher = new BlockHasher({ scheme: "sha256_cbor_64bit", hashSeed: "42", blockSize: 64 });
  const topics = ["travel", "payroll", "legal", "it-support", "facilities", "sales"];

  beforeAll(async () => {
    const kvPort = await freePort();
    for (const ip of ["127.0.0.41", "127.0.0.42", "127.0.0.43"]) {
      pods.push(await new FakeVllmPod(ip).start());
      // vLLM with endpoint tcp://*:<port> binds its PUB; each replica dials it.
      const pub = new KvEventPublisher({ topic: `kv@${ip}@Qwen3-32B` });
      await pub.bind(`tcp://${ip}:${kvPort}`);
      publishers.push(pub);
    }
    for (let i = 0; i < 2; i++)
      replicas.push(await startReplica(pods, { kvEvents: { mode: "connect", port: kvPort } }));
    tokenizer = new TokenizationService({
      config: parseConfig({}).tokenizer,
      logger: createLogger({ level: "silent" }),
    });
    for (const [i, pub] of publishers.entries())
      await pub.publishUntil(() =>
        replicas.every((r) => r.app.kvEvents.podStates().some((s) => s.podId === pods[i]!.address)),
      );
  });

  afterAll(async () => {
    for (const r of replicas) await r.stop();
    for (const p of publishers) p.close();
    await tokenizer?.stop();
    await Promise.all(pods.map((p) => p.close()));
  });

  it("converge to the same index and pick the same pod for the same requests", async () => {
    // Each conversation's first turn was served by one pod, which cached it (and evicted a bit elsewhere).
    const chains: BigUint64Array[] = [];
    for (const [i, topic] of topics.entries()) {
      const { tokenIds } = await tokenizer.tokenize(
        "Qwen3-32B",
        "/v1/chat/completions",
        body(topic, 0) as never,
      );
      const chain = hasher.hash(tokenIds);
      chains.push(chain);
      const medium = i % 2 === 0 ? "GPU" : "CPU";
      await publishers[i % pods.length]!.publish([{ type: "BlockStored", hashes: [...chain], medium }]);
    }
    await publishers[0]!.publish([{ type: "BlockRemoved", hashes: [chains[0]!.at(-1)!], medium: "GPU" }]);
    const applied = (r: Replica) => r.app.index.stats().entries;
    const expected = chains.reduce((n, c) => n + c.length, 0) - 1;
    await until(() => replicas.every((r) => applied(r) === expected), "both replicas to apply every event");

    const podIds = pods.map((p) => p.address);
    for (const chain of chains) {
      const [a, b] = replicas.map((r) => r.app.index.matchPrefix(chain, podIds));
      expect([...a!.blocks]).toEqual([...b!.blocks]);
      expect([...a!.weighted]).toEqual([...b!.weighted]);
    }
    for (const [i, topic] of topics.entries()) {
      const picks = await Promise.all(replicas.map((r) => r.route(body(topic, 1), `${topic}-${i}`)));
      expect(picks).toEqual([pods[i % pods.length]!.address, pods[i % pods.length]!.address]);
    }
  });
});
