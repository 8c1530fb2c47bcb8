// Request values vLLM renders with Python, through kvpick serve's real ext_proc socket: a tool schema's
// `"default": 1.0` and `"default": 1` are different prompts (and different pods' caches), exactly as Python
// renders them (test/fixtures/python-json/golden.json, from oracle.py); media content parts are routed on
// load without prefix credit; a body nested deeper than kvpick reads is a clear 400, never a 5xx.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/app.js";
import { parseConfig } from "../../src/config/load.js";
import { BlockHasher } from "../../src/kv-index/block-hash.js";
import { createLogger } from "../../src/observability/logger.js";
import { parseRequestJson } from "../../src/tokenization/python-json.js";
import { TokenizationService } from "../../src/tokenization/tokenization-service.js";
import { EnvoyClient } from "../support/envoy-client.js";
import { FakeVllmPod } from "../support/fake-vllm-pod.js";
import { until } from "../support/until.js";
import { repoRoot } from "../support/golden.js";
import { KvEventPublisher } from "../support/kv-event-publisher.js";

interface ToolCase {
  name: string;
  body: string;
  rendered_prompt: string;
}
const golden = JSON.parse(
  readFileSync(join(repoRoot, "test", "fixtures", "python-json", "golden.json"), "utf8"),
) as { tool_requests: ToolCase[] };
const withFloat = golden.tool_requests.find((c) => c.name === "default 1.0")!;
const withInt = golden.tool_requests.find((c) => c.name === "default 1")!;

describe("Python-faithful request values through ext_proc", () => {
  const pods: FakeVllmPod[] = [];
  const publishers: KvEventPublisher[] = [];
  const logs: string[] = [];
  let app: App;
  let client: EnvoyClient;
  let metricsUrl: string;
  let tokenizer: TokenizationService;
  const hasher = new BlockHasher({ scheme: "sha256_cbor_64bit", hashSeed: "42", blockSize: 64 });
  // Token ids of the prompt Python renders (tokenized as a completion: Qwen3 adds no special tokens).
  const pythonChain = async (c: ToolCase) =>
    hasher.hash(
      (await tokenizer.tokenize("Qwen3-32B", "/v1/completions", { prompt: c.rendered_prompt })).tokenIds,
    );

  beforeAll(async () => {
    for (const ip of ["127.0.0.61", "127.0.0.62"]) pods.push(await new FakeVllmPod(ip).start());
    const logger = createLogger({ level: "info", destination: { write: (s: string) => void logs.push(s) } });
    const config = parseConfig({
      tokenizer: { hashSeed: "42" },
      kvEvents: { endpoint: "tcp://127.0.0.1:*" },
      server: { grpcPort: 0, grpcHealthPort: 0, metricsPort: 0, secureServing: false },
      pool: { endpoints: pods.map((p) => p.address) },
    });
    app = createApp({ config, logger, host: "127.0.0.1" });
    const ports = await app.start();
    metricsUrl = `http://127.0.0.1:${ports.metricsPort}/metrics`;
    for (const pod of pods) {
      const pub = new KvEventPublisher({ topic: `kv@${pod.ip}@Qwen3-32B` });
      pub.connect(ports.kvEventsEndpoint!);
      publishers.push(pub);
      await pub.publishUntil(() => app.kvEvents.podStates().some((s) => s.podId === pod.ip));
    }
    client = new EnvoyClient(`127.0.0.1:${ports.grpcPort}`, { tls: false });
    await client.waitForReady();
    await until(() => app.endpoints.candidates().every((e) => e.metricsState === "fresh"), "first scrapes");
    tokenizer = new TokenizationService({
      config: parseConfig({}).tokenizer,
      logger: createLogger({ level: "silent" }),
    });
  });

  afterAll(async () => {
    for (const p of publishers) p.close();
    client?.close();
    await tokenizer?.stop();
    await app?.stop();
    await Promise.all(pods.map((p) => p.close()));
  });

  it("tokenizes a tool request exactly as the prompt Python renders", async () => {
    for (const c of [withFloat, withInt]) {
      const body = parseRequestJson(c.body) as Record<string, unknown>;
      expect(await tokenizer.renderChat("Qwen3-32B", body)).toBe(c.rendered_prompt);
      const ours = await tokenizer.tokenize("Qwen3-32B", "/v1/chat/completions", body);
      const python = await tokenizer.tokenize("Qwen3-32B", "/v1/completions", { prompt: c.rendered_prompt });
      expect(Array.from(ours.tokenIds)).toEqual(Array.from(python.tokenIds));
    }
  });

  it("routes `default: 1.0` and `default: 1` to the pod holding each one's Python-rendered prefix", async () => {
    const floatChain = await pythonChain(withFloat);
    const intChain = await pythonChain(withInt);
    expect(floatChain.length).toBeGreaterThanOrEqual(3);
    expect(floatChain.at(-1)).not.toBe(intChain.at(-1));
    const [a, b] = pods;
    await publishers[0]!.publish([{ type: "BlockStored", hashes: [...floatChain], parent: null }]);
    await publishers[1]!.publish([{ type: "BlockStored", hashes: [...intChain], parent: null }]);
    await until(
      () =>
        app.index.matchPrefix(floatChain, [a!.ip]).blocks[0] === floatChain.length &&
        app.index.matchPrefix(intChain, [b!.ip]).blocks[0] === intChain.length,
      "both chains indexed",
    );
    // Equal load on both pods (a scrape that timed out on a loaded machine would skew the choice).
    await until(() => app.endpoints.candidates().every((e) => e.metricsState === "fresh"), "fresh scrapes");
    const toFloat = await client.process({ path: "/v1/chat/completions", body: withFloat.body });
    const toInt = await client.process({ path: "/v1/chat/completions", body: withInt.body });
    expect(toFloat.immediate).toBeNull();
    expect(toFloat.destination).toBe(a!.address);
    expect(toInt.destination).toBe(b!.address);
  });

  it("routes a request with media content parts on load, with no prefix credit and no 400", async () => {
    const before = await (await fetch(metricsUrl)).text();
    const count = (text: string) =>
      Number(/^epp_cache_signal_missing_total\{reason="multimodal"\} (\d+)/m.exec(text)?.[1] ?? 0);
    const body = JSON.parse(withFloat.body) as { messages: { role: string; content: unknown }[] };
    const parts: [string, Record<string, unknown>][] = [
      ["image_url", { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } }],
      ["input_audio", { type: "input_audio", input_audio: { data: "UklGRg==", format: "wav" } }],
      ["video_url", { type: "video_url", video_url: { url: "https://example.com/v.mp4" } }],
      ["untyped image_url", { image_url: { url: "https://example.com/a.png" } }],
    ];
    for (const [name, part] of parts) {
      // The text before the media part is the tool request above, whose whole chain one pod holds.
      const messages = [
        ...body.messages.slice(0, -1),
        { role: "user", content: [{ type: "text", text: "Find me a train to Basel." }, part] },
      ];
      const r = await client.process({
        path: "/v1/chat/completions",
        body: JSON.stringify({ ...body, messages }),
        headers: { "x-request-id": `mm-${name}` },
      });
      expect(r.immediate, name).toBeNull();
      expect(pods.map((p) => p.address)).toContain(r.destination);
      const line = logs.find((l) => l.includes(`"mm-${name}"`) && l.includes("Request handled"));
      expect(JSON.parse(line!)).toMatchObject({ prefixMatchBlocks: 0, totalBlocks: 0, promptTokens: null });
    }
    expect(count(await (await fetch(metricsUrl)).text()) - count(before)).toBe(parts.length);
  });

  it("answers a content part nested 100,000 deep with a clear 400, and routes one nested 4,000 deep", async () => {
    const nested = (depth: number) => `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
    const body = (depth: number) =>
      `{"model":"Qwen3-32B","messages":[{"role":"user","content":[{"type":"text","text":"hi","extra":${nested(depth)}}]}]}`;
    const deep = await client.process({ path: "/v1/chat/completions", body: body(100_000) });
    expect(deep.immediate?.status).toBe(400);
    expect(JSON.stringify(deep.immediate?.json)).toMatch(/nested deeper than 4096 levels/);
    const ok = await client.process({ path: "/v1/chat/completions", body: body(4000) });
    expect(ok.immediate).toBeNull();
    expect(pods.map((p) => p.address)).toContain(ok.destination);
    // The same depth in a tool schema reaches the template (toRuntime, json.dumps) and is still routed.
    const tool = `{"type":"function","function":{"name":"f","parameters":${nested(4000)}}}`;
    const t = await client.process({
      path: "/v1/chat/completions",
      body: `{"model":"Qwen3-32B","messages":[{"role":"user","content":"hi"}],"tools":[${tool}]}`,
      headers: { "x-request-id": "deep-tool" },
    });
    expect(t.immediate).toBeNull();
    const line = logs.find((l) => l.includes('"deep-tool"') && l.includes("Request handled"));
    expect(JSON.parse(line!).promptTokens).toBeGreaterThan(4000);
  });
});
