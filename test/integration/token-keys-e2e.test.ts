// Pods publishing under a seed and algo kvpick was never told: a real `kvpick serve` child started without
// --hash-seed indexes them by token keys (kvEvents.keys auto) and routes every request to the pod holding its
// whole prefix; a BlockRemoved (the simulated engine evicting) takes the block away through the map.
// Real ZeroMQ (simulated vLLM pods → kvpick's bound SUB), real HTTP pods, real ext_proc client.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HashAlgo } from "../../src/config/schema.js";
import { DEFAULT_ENGINE_CONFIG } from "../../src/sim/engine-config.js";
import type { EventLayout } from "../../src/sim/kv-event-encoder.js";
import {
  type SimServeStack,
  startSimServeStack,
  TOPIC_PROMPTS as PREFIXES,
  topicChat as chat,
} from "../support/sim-serve-stack.js";
import { until } from "../support/until.js";

const variants: { algo: HashAlgo; seed: string; layout: EventLayout }[] = [
  { algo: "sha256_cbor", seed: "31337", layout: "v0.10.2" },
  { algo: "xxhash_cbor", seed: "9001", layout: "map" },
];

for (const v of variants) {
  describe(`kvpick serve without --hash-seed, pods on ${v.algo} seed ${v.seed} (${v.layout} layout)`, () => {
    let stack: SimServeStack;
    const route = (body: unknown) => stack.route(body);

    beforeAll(async () => {
      stack = await startSimServeStack({
        // 24 blocks per pod: a second long prompt on the same pod evicts the first one's blocks.
        engine: { ...DEFAULT_ENGINE_CONFIG, numGpuBlocks: 24 },
        hashAlgo: v.algo,
        hashSeed: v.seed,
        eventLayout: v.layout,
      });
    }, 120_000);

    afterAll(async () => {
      await stack?.close();
    });

    it("routes every request to the pod holding its whole prefix", async () => {
      // Pod i serves prefix i once: its BlockStored events (under the unknown seed) reach kvpick.
      for (let i = 0; i < 3; i++) await stack.serveOn(i, chat(PREFIXES[i]!, "warm up"));
      await until(
        async () => (await route(chat(PREFIXES[2]!, "probe"))).destination === stack.cluster.pods[2]!.address,
        "pod 2's blocks indexed",
        30_000,
        50,
      );
      for (let q = 0; q < 3; q++) {
        for (let i = 0; i < 3; i++) {
          const r = await route(chat(PREFIXES[i]!, `question ${q}: where is order ${q * 100 + i}?`));
          expect(r.destination).toBe(stack.cluster.pods[i]!.address);
          // The whole shared prefix (the system prompt's full blocks) matched, not a lucky pick.
          expect(r.log?.prefixMatchBlocks as number).toBeGreaterThanOrEqual(8);
        }
      }
    }, 120_000);

    it("takes a block away when the pod's BlockRemoved arrives through the map", async () => {
      const before = await route(chat(PREFIXES[0]!, "still there?"));
      expect(before.log?.prefixMatchBlocks as number).toBeGreaterThanOrEqual(8);
      // Pod 0 serves two other long prompts: with 24 blocks it must evict prefix 0's cached blocks.
      await stack.serveOn(0, chat(PREFIXES[1]!.split("").reverse().join(""), "evict"));
      await stack.serveOn(0, chat(PREFIXES[2]!.split("").reverse().join(""), "evict"));
      await until(
        async () => ((await route(chat(PREFIXES[0]!, "gone?"))).log?.prefixMatchBlocks as number) === 0,
        "prefix 0 removed from kvpick's index",
        30_000,
        50,
      );
    }, 120_000);
  });
}
