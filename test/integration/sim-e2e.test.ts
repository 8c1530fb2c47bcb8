// The demo stack end to end on loopback: kvpick (createApp) ← KV events ← 3 simulated vLLM pods, driven
// through the Envoy stand-in. Requests sharing a long system prompt must stick to one pod and report
// cached tokens; events must decode and pass kvpick's hash check; the pods' pages must parse.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { simSettings } from "../../src/cli/sim-command.js";
import { type DemoStack, startDemoStack } from "../../src/demo/demo-stack.js";
import { parseVllmMetrics } from "../../src/endpoints/vllm-metrics.js";
import { createLogger } from "../../src/observability/logger.js";
import { until } from "../support/until.js";

const SYSTEM =
  "You are the support assistant of Example Corp. " +
  Array.from({ length: 80 }, (_, i) => `Rule ${i}: refunds within ${i + 3} days need receipt ${i * 7}.`).join(
    " ",
  );

const chat = (question: string, extra: Record<string, unknown> = {}) => ({
  model: "Qwen3-32B",
  max_tokens: 8,
  messages: [
    { role: "system", content: SYSTEM },
    { role: "user", content: question },
  ],
  ...extra,
});

describe("simulated pods + kvpick + Envoy stand-in", () => {
  let stack: DemoStack;
  const logs: Record<string, unknown>[] = [];
  let base: string;

  beforeAll(async () => {
    const logger = createLogger({
      level: "info",
      destination: { write: (s: string) => void logs.push(JSON.parse(s)) },
    });
    const sim = simSettings({ pods: 3, "base-port": 0, "time-scale": "200", "ip-mode": "auto" });
    stack = await startDemoStack({ sim, frontPort: 0, kvEventsPort: 0, logger });
    base = `http://127.0.0.1:${stack.front.port}`;
    await until(
      () => stack.app.endpoints.candidates().every((e) => e.metricsState === "fresh"),
      "first scrape of every pod",
    );
  });

  afterAll(async () => {
    await stack?.close();
  });

  async function post(body: unknown, requestId: string) {
    const r = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": requestId },
      body: JSON.stringify(body),
    });
    return { status: r.status, pod: r.headers.get("x-kvpick-destination"), text: await r.text() };
  }

  it("routes repeated shared-prefix requests to the pod that cached the prefix", async () => {
    const first = await post(chat("How do refunds work?"), "e2e-1");
    expect(first.status).toBe(200);
    const firstJson = JSON.parse(first.text);
    expect(firstJson.usage.completion_tokens).toBe(8);
    expect(firstJson.usage.prompt_tokens_details.cached_tokens).toBe(0);
    const owner = first.pod!;
    expect(stack.cluster.pods.map((p) => p.address)).toContain(owner);
    const ownerIp = owner.split(":")[0]!;
    const ownerId = stack.cluster.ipMode === "loopback" ? ownerIp : owner;
    // Wait for the owner's BlockStored to reach kvpick's index.
    await until(
      () => stack.app.index.hasPod(ownerId) && stack.app.index.stats().entries > 10,
      "events indexed",
    );
    for (let i = 0; i < 5; i++) {
      const r = await post(chat(`Question number ${i}: can I return item ${i}?`), `e2e-${i + 2}`);
      expect(r.status).toBe(200);
      expect(r.pod).toBe(owner);
      expect(JSON.parse(r.text).usage.prompt_tokens_details.cached_tokens).toBeGreaterThan(1000);
    }
    const handled = logs.filter(
      (l) => l.msg === "Request handled" && String(l["x-request-id"]).startsWith("e2e-"),
    );
    expect(handled.length).toBe(6);
    expect(handled.at(-1)!.prefixMatchBlocks as number).toBeGreaterThan(15);
    const state = stack.app.kvEvents.podStates().find((s) => s.podId === ownerId)!;
    expect(state.hashChecks).toBeGreaterThan(0);
    expect(state.hashMismatches).toBe(0);
  });

  it("streams SSE through the front with a final usage chunk", async () => {
    const r = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify(
        chat("Stream please", { stream: true, stream_options: { include_usage: true }, max_tokens: 5 }),
      ),
    });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toContain("text/event-stream");
    const events = (await r.text()).split("\n\n").filter((e) => e.startsWith("data: "));
    expect(events.at(-1)).toBe("data: [DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
    expect(chunks.filter((c) => c.choices.length === 1)).toHaveLength(5);
    expect(chunks.at(-1).usage.prompt_tokens_details.cached_tokens).toBeGreaterThan(1000);
  });

  it("passes kvpick's immediate responses to the client and serves GET /v1/models", async () => {
    const bad = await fetch(`${base}/v1/chat/completions`, { method: "POST", body: "{not json" });
    expect(bad.status).toBe(400);
    const models = await fetch(`${base}/v1/models`);
    expect(models.status).toBe(200);
    expect(((await models.json()) as { data: Array<{ id: string }> }).data[0]!.id).toBe("Qwen3-32B");
  });

  it("serves /metrics pages that kvpick's parser reads", async () => {
    const page = await (await fetch(`http://${stack.cluster.pods[0]!.address}/metrics`)).text();
    const parsed = parseVllmMetrics(page);
    expect(parsed.ok).toBe(true);
    if (parsed.ok) {
      expect(parsed.metrics.blockSize).toBe(64);
      expect(parsed.metrics.numGpuBlocks).toBe(4802);
      expect(parsed.metrics.prefixCachingHashAlgo).toBe("sha256_cbor_64bit");
    }
    expect(page).toMatch(/^vllm:prefix_cache_hits_total\{[^}]*\} \d/m);
  });
});
