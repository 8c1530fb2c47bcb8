import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Subscriber } from "zeromq";
import { parseConfig } from "../config/load.js";
import { decodeBatch, type KvEventBatch } from "../kv-events/decode.js";
import { BlockHasher } from "../kv-index/block-hash.js";
import { createLogger } from "../observability/logger.js";
import { TokenizationService } from "../tokenization/tokenization-service.js";
import { LiveClock } from "./clock.js";
import { DEFAULT_ENGINE_CONFIG } from "./engine-config.js";
import { loadOutputVocabulary } from "./output-vocabulary.js";
import { SimPod } from "./sim-pod.js";
import { until } from "../../test/support/until.js";

const body = {
  model: "Qwen3-32B",
  max_tokens: 70,
  messages: [
    { role: "user", content: `Summarise: ${"the cache is warm and the router is precise. ".repeat(30)}` },
  ],
};

describe("SimPod on real sockets", () => {
  const logger = createLogger({ level: "silent" });
  const tokenizer = new TokenizationService({ config: parseConfig({}).tokenizer, logger });
  const sub = new Subscriber({ receiveHighWaterMark: 100_000 });
  const received: Array<{ topic: string; seq: bigint; batch: KvEventBatch }> = [];
  let pod: SimPod;
  let url: string;

  beforeAll(async () => {
    sub.subscribe("kv@");
    await sub.bind("tcp://127.0.0.1:*");
    void (async () => {
      for await (const [topic, seq, payload] of sub) {
        received.push({
          topic: topic!.toString(),
          seq: seq!.readBigUInt64BE(),
          batch: decodeBatch(payload!),
        });
      }
    })();
    pod = new SimPod({
      ip: "127.0.0.1",
      port: 0,
      model: "Qwen3-32B",
      engine: DEFAULT_ENGINE_CONFIG,
      hashAlgo: "sha256_cbor_64bit",
      hashSeed: "42",
      clock: new LiveClock(1000),
      tokenizer,
      vocabulary: await loadOutputVocabulary(tokenizer, "Qwen3-32B"),
      logger,
      kvEventsEndpoint: sub.lastEndpoint!,
      topicPodId: "ip:port",
    });
    await pod.start();
    url = `http://${pod.address}`;
    // Slow joiner: idle resets publish AllBlocksCleared until the subscription has reached the PUB.
    const deadline = Date.now() + 5000;
    while (received.length === 0 && Date.now() < deadline) {
      await fetch(`${url}/reset_prefix_cache`, { method: "POST" });
      await new Promise((r) => setTimeout(r, 10));
    }
  });

  afterAll(async () => {
    await pod.close();
    sub.close();
    await tokenizer.stop();
  });

  const chat = async () => {
    const r = await fetch(`${url}/v1/chat/completions`, { method: "POST", body: JSON.stringify(body) });
    return {
      status: r.status,
      json: (await r.json()) as { usage: { prompt_tokens_details: { cached_tokens: number } } },
    };
  };

  it("publishes the prompt's and the generated tokens' blocks with vLLM's hashes, seq +1 per batch", async () => {
    expect(received[0]!.topic).toBe(`kv@${pod.address}@Qwen3-32B`);
    const before = received.length;
    const r = await chat();
    expect(r.status).toBe(200);
    await until(
      () =>
        received
          .slice(before)
          .some((m) => m.batch.events.some((e) => e.type === "BlockStored" && e.parentBlockHash !== null)),
      "a BlockStored chained to the prompt",
      5000,
      5,
    );
    const mine = received.slice(before);
    for (let i = 1; i < mine.length; i++) expect(mine[i]!.seq).toBe(mine[i - 1]!.seq + 1n);
    const { tokenIds } = await tokenizer.tokenize("Qwen3-32B", "/v1/chat/completions", body);
    const chain = new BlockHasher({ scheme: "sha256_cbor_64bit", hashSeed: "42", blockSize: 64 }).hash(
      tokenIds,
    );
    const first = mine[0]!.batch.events[0]!;
    expect(first.type === "BlockStored" && [...first.blockHashes]).toEqual([...chain]);
    // A later batch stores a block completed by generated tokens, chained to the prompt's last block.
    const gen = mine
      .flatMap((m) => m.batch.events)
      .find((e) => e.type === "BlockStored" && e.parentBlockHash !== null);
    expect(gen?.type === "BlockStored" && gen.parentBlockHash).toBe(chain[chain.length - 1]);
    expect((await chat()).json.usage.prompt_tokens_details.cached_tokens).toBe(chain.length * 64);
  });

  it("fault knobs: failed requests, dropped batches (seq gap), restart (seq 0, empty cache)", async () => {
    await fetch(`${url}/sim/faults`, { method: "POST", body: JSON.stringify({ failRequestFraction: 1 }) });
    expect((await chat()).status).toBe(500);
    pod.setFaults({ failRequestFraction: 0, dropEventFraction: 1 });
    const seqBefore = pod.publisher!.seq;
    await chat();
    expect(pod.publisher!.dropped).toBeGreaterThan(0);
    pod.setFaults({ dropEventFraction: 0 });
    await fetch(`${url}/reset_prefix_cache`, { method: "POST" });
    await until(() => received.at(-1)!.seq >= seqBefore + 1n, "the published batch", 5000, 5);
    expect(received.at(-1)!.seq).toBeGreaterThan(received.at(-2)!.seq + 1n); // the gap kvpick must notice
    await fetch(`${url}/sim/restart`, { method: "POST" });
    const n = received.length;
    // The restarted publisher is a new socket: wait for it to be connected again, then seq restarts at 0.
    await until(
      () => {
        void fetch(`${url}/reset_prefix_cache`, { method: "POST" });
        return received.length > n;
      },
      "a batch from the restarted publisher",
      5000,
      5,
    );
    expect(received[n]!.seq).toBeLessThan(5n);
    expect((await chat()).json.usage.prompt_tokens_details.cached_tokens).toBe(0);
  });
});
