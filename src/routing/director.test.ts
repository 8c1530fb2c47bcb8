// The Director while the block size is not known yet (tokenizer.blockSize unset, no pod reported one): the
// request is routed on load alone, counted, and its prompt still counts as load; once a pod reports its size
// the request chain is hashed with it.
import { describe, expect, it } from "vitest";
import { LearntBlockSize } from "../kv-index/learnt-block-size.js";
import { RequestHasher } from "../kv-index/request-key-scheme.js";
import { createLogger } from "../observability/logger.js";
import { Metrics } from "../observability/metrics.js";
import { RouteMetrics } from "../observability/route-metrics.js";
import { anEndpoint, staticSource } from "../scheduling/scheduling.fixture.js";
import type { SchedulingResult } from "../scheduling/types.js";
import { Director, type RequestScheduler } from "./director.js";

describe("Director with a learnt block size", () => {
  it("routes on load alone (block-size-unknown) until a pod reports its block size", async () => {
    const logger = createLogger({ level: "silent" });
    const metrics = new Metrics();
    const sizes = new LearntBlockSize(null, logger);
    const pod = anEndpoint("10.0.0.1:8000");
    const asked: Parameters<RequestScheduler["schedule"]>[0][] = [];
    const scheduler: RequestScheduler = {
      schedule(req): SchedulingResult {
        asked.push(req);
        return {
          kind: "picked",
          endpoint: pod,
          targets: [pod],
          prefixMatchBlocks: 0,
          totalBlocks: 0,
          scores: [],
        };
      },
    };
    const director = new Director({
      tokenizer: {
        tokenize: async () => ({
          tokenIds: Uint32Array.from({ length: 200 }, (_, i) => i),
          renderMicros: 0,
          tokenizeMicros: 0,
        }),
      },
      hasher: new RequestHasher({ scheme: "sha256_cbor_64bit", hashSeed: "x", comparable: false }, sizes),
      scheduler,
      endpoints: staticSource([pod]),
      logger,
      recorder: new RouteMetrics(metrics),
    });
    const route = () =>
      director.route({
        requestId: "r",
        method: "POST",
        path: "/v1/chat/completions",
        headers: new Map(),
        body: Buffer.from(JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] })),
        subsetHint: null,
      });
    expect((await route()).kind).toBe("routed");
    expect(asked[0]!.blockHashes).toHaveLength(0);
    expect(asked[0]!.promptTokens).toBe(200);
    const missing = await metrics.registry.getSingleMetric("epp_cache_signal_missing_total")!.get();
    expect(missing.values.find((v) => v.labels.reason === "block-size-unknown")?.value).toBe(1);
    sizes.observe("10.0.0.1:8000", 16, "vllm:cache_config_info");
    await route();
    expect(asked[1]!.blockHashes).toHaveLength(12);
  });
});
