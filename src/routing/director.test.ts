// The Director while the block size is not known yet (tokenizer.blockSize unset, no pod reported one): the
// request is routed on load alone, counted, and its prompt still counts as load; once a pod reports its size
// the request chain is hashed with it.
import { describe, expect, it } from "vitest";
import { LearntBlockSize } from "../kv-index/learnt-block-size.js";
import { RequestHasher } from "../kv-index/request-key-scheme.js";
import { createLogger } from "../observability/logger.js";
import { Metrics } from "../observability/metrics.js";
import { RouteMetrics } from "../observability/route-metrics.js";
import { anEndpoint, recordingScheduler, staticSource } from "../scheduling/scheduling.fixture.js";
import type { SchedulingResult } from "../scheduling/types.js";
import { Director } from "./director.js";
import type { RouteDecision } from "./route-decision.js";
import { aRouteRequest } from "./route-request.fixture.js";

describe("Director with a learnt block size", () => {
  it("routes on load alone (block-size-unknown) until a pod reports its block size", async () => {
    const logger = createLogger({ level: "silent" });
    const metrics = new Metrics();
    const sizes = new LearntBlockSize(null, logger);
    const pod = anEndpoint("10.0.0.1:8000");
    const scheduler = recordingScheduler(pod);
    const { asked } = scheduler;
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
      director.route(
        aRouteRequest(
          Buffer.from(JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] })),
        ),
      );
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

describe("Director decisions as one record", () => {
  it("hands one record per request to the metrics, the audit line and the trace", async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger({
      level: "info",
      destination: { write: (s: string) => void lines.push(JSON.parse(s)) },
    });
    const pod = anEndpoint("10.0.0.1:8000");
    const other = anEndpoint("10.0.0.2:8000");
    const decisions: RouteDecision[] = [];
    const attributes = new Map<string, unknown>();
    const spans: string[] = [];
    const director = new Director({
      tokenizer: {
        tokenize: async () => ({ tokenIds: new Uint32Array(130), renderMicros: 0, tokenizeMicros: 0 }),
      },
      hasher: new RequestHasher(
        { scheme: "sha256_cbor_64bit", hashSeed: "x", comparable: false },
        new LearntBlockSize(64, logger),
      ),
      scheduler: {
        schedule: (): SchedulingResult => ({
          kind: "picked",
          endpoint: pod,
          targets: [pod, other],
          prefixMatchBlocks: 1,
          totalBlocks: 2,
          scores: [
            { address: pod.address, total: 0.123456, byScorer: { s: 0.123456 } },
            { address: other.address, total: 0.1, byScorer: { s: 0.1 } },
          ],
        }),
      },
      endpoints: staticSource([pod, other]),
      logger,
      recorder: {
        modelLabel: (m) => `label:${m}`,
        decided: (d) => {
          decisions.push(d);
          return null;
        },
      },
      tracer: {
        start: () => ({
          stage: (name) => void spans.push(name),
          set: (k, v) => void attributes.set(k, v),
          end() {},
        }),
      },
    });
    const out = await director.route(
      aRouteRequest(Buffer.from(JSON.stringify({ model: "m", prompt: "hi" })), {
        path: "/v1/completions",
        requestId: "r1",
      }),
    );
    expect(out).toMatchObject({ kind: "routed", endpoint: pod.address, fallbacks: [other.address] });
    expect(decisions).toHaveLength(1);
    const d = decisions[0]!;
    expect(d).toMatchObject({ requestId: "r1", model: "m", promptTokens: 130, missingSignal: null });
    expect(d.stages.map((s) => s.stage)).toEqual(["parse", "tokenize", "hash", "score"]);
    expect(d.verdict).toMatchObject({
      kind: "routed",
      prefixMatchBlocks: 1,
      totalBlocks: 2,
      predictedTokens: 64,
    });
    expect(spans).toEqual(["parse", "tokenize", "hash", "schedule"]);
    expect(attributes.get("gen_ai.request.model")).toBe("label:m");
    expect(attributes.get("kvpick.cached_tokens.predicted")).toBe(64);
    const audit = lines.filter((l) => l.msg === "Request handled");
    expect(audit).toHaveLength(1);
    expect(
      Object.keys(audit[0]!).filter((k) => !["level", "time", "pid", "hostname", "msg"].includes(k)),
    ).toEqual([
      "component",
      "x-request-id",
      "model",
      "targetModel",
      "endpoint",
      "Address",
      "promptTokens",
      "prefixMatchBlocks",
      "totalBlocks",
      "score",
      "scores",
      "runnerUp",
      "runnerUpScore",
      "candidates",
      "schedulingLatencyUs",
    ]);
    expect(audit[0]).toMatchObject({
      score: 0.1235,
      runnerUp: other.address,
      candidates: 2,
      promptTokens: 130,
    });
  });
});
