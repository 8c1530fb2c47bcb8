// A real `kvpick serve` child started without --block-size (and without --hash-seed) in front of simulated
// vLLM pods running 16-token blocks: it learns the size from the pods (their vllm:cache_config_info page or
// their first BlockStored), logs it once, hashes requests with it, and routes every request to the pod
// holding its whole prefix. Real ZeroMQ, real HTTP pods, real ext_proc client.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_ENGINE_CONFIG } from "../../src/sim/engine-config.js";
import {
  type SimServeStack,
  startSimServeStack,
  TOPIC_PROMPTS as PREFIXES,
  topicChat as chat,
} from "../support/sim-serve-stack.js";
import { until } from "../support/until.js";

const BLOCK = 16;

describe("kvpick serve without --block-size, pods on 16-token blocks", () => {
  let stack: SimServeStack;
  const route = (body: unknown) => stack.route(body);

  beforeAll(async () => {
    stack = await startSimServeStack({
      engine: { ...DEFAULT_ENGINE_CONFIG, blockSize: BLOCK, numGpuBlocks: 2000 },
      hashAlgo: "sha256_cbor",
      hashSeed: "31337",
      eventLayout: "v0.10.2",
    });
  }, 120_000);

  afterAll(async () => {
    await stack?.close();
  });

  it("learns 16 from the pods, once, and routes every request to the pod holding its prefix", async () => {
    for (let i = 0; i < 3; i++) await stack.serveOn(i, chat(PREFIXES[i]!, "warm up"));
    await until(
      async () => (await route(chat(PREFIXES[2]!, "probe"))).destination === stack.cluster.pods[2]!.address,
      "pod 2's blocks indexed",
      30_000,
      50,
    );
    const learnt = stack.lines.filter((l) => String(l.msg).startsWith("block size learnt:"));
    expect(learnt).toHaveLength(1);
    expect(learnt[0]!.blockSize).toBe(BLOCK);
    expect(["vllm:cache_config_info", "BlockStored"]).toContain(learnt[0]!.source);
    for (let q = 0; q < 3; q++) {
      for (let i = 0; i < 3; i++) {
        const r = await route(chat(PREFIXES[i]!, `question ${q}: where is order ${q * 100 + i}?`));
        expect(r.destination).toBe(stack.cluster.pods[i]!.address);
        const total = r.log.totalBlocks as number;
        // Blocks of 16 tokens: a 64-token hasher would see a quarter of them.
        expect(total * BLOCK).toBeLessThanOrEqual(r.log.promptTokens as number);
        expect(total * BLOCK).toBeGreaterThan((r.log.promptTokens as number) - BLOCK);
        // The whole system prompt matched (~40 blocks), not a lucky pick.
        expect(r.log.prefixMatchBlocks as number).toBeGreaterThanOrEqual(30);
      }
    }
  }, 120_000);
});
