// A large request body is parsed on a tokenizer worker (tokenization/body-summary.ts) instead of the main
// thread, through the real Director and TokenizationService: the decision is the same as for a body parsed
// on the main thread (token count, block chain, estimated-prefix text, multimodal), client mistakes are the
// same 4xx, and the messages of a large conversation never reach the main thread.
import { afterAll, describe, expect, it } from "vitest";
import { configSchema } from "../src/config/schema.js";
import { LearntBlockSize } from "../src/kv-index/learnt-block-size.js";
import { RequestHasher } from "../src/kv-index/request-key-scheme.js";
import { createLogger } from "../src/observability/logger.js";
import { Metrics } from "../src/observability/metrics.js";
import { RouteMetrics } from "../src/observability/route-metrics.js";
import { Director } from "../src/routing/director.js";
import { anEndpoint, recordingScheduler, staticSource } from "../src/scheduling/scheduling.fixture.js";
import { offloadedMessages } from "../src/tokenization/body-summary.js";
import { TokenizationService } from "../src/tokenization/tokenization-service.js";
import { aRouteRequest } from "../src/routing/route-request.fixture.js";

const logger = createLogger({ level: "silent" });
const services: TokenizationService[] = [];
afterAll(() => Promise.all(services.map((s) => s.stop())));

/** A Director over a real tokenizer; `workerParseBytes` decides which bodies are parsed on the worker. */
function director(workerParseBytes: number) {
  const tokenizer = new TokenizationService({
    config: { ...configSchema.parse({}).tokenizer, workerThreads: 1, workerParseBytes },
    logger,
  });
  services.push(tokenizer);
  const pod = anEndpoint("10.0.0.1:8000");
  const scheduler = recordingScheduler(pod);
  const { asked } = scheduler;
  const d = new Director({
    tokenizer,
    hasher: new RequestHasher(
      { scheme: "sha256_cbor_64bit", hashSeed: "42", comparable: false },
      new LearntBlockSize(16, logger),
    ),
    scheduler,
    endpoints: staticSource([pod]),
    logger,
    recorder: new RouteMetrics(new Metrics()),
  });
  const route = async (body: Uint8Array, path = "/v1/chat/completions") => {
    const outcome = await d.route({
      requestId: "r",
      method: "POST",
      path,
      headers: new Map(),
      body,
      subsetHint: null,
    });
    const req = asked.at(-1);
    if (outcome.kind !== "routed") {
      const error = outcome.kind === "rejected" ? outcome.error : null;
      return { kind: outcome.kind, code: error?.code, status: error?.httpStatus, message: error?.message };
    }
    return {
      kind: outcome.kind,
      promptTokens: req!.promptTokens,
      chain: Array.from(req!.blockHashes, String),
      promptText: req!.promptText!(),
      // The estimated keys read promptValue: a string is the text itself, anything else stands for its JSON.
      promptValueText: ((v) => (typeof v === "string" ? v : JSON.stringify(v)))(req!.promptValue!()),
    };
  };
  return { route, tokenizer };
}

const conversation = (n: number, text = "the travel desk books hotels, 東京 trips need approval.") =>
  Buffer.from(
    JSON.stringify({
      model: "Qwen3-32B",
      messages: Array.from({ length: n }, (_, i) => ({
        role: i % 2 ? "assistant" : "user",
        content: `turn ${i}: ${text}`,
      })),
    }),
  );

describe("large request bodies parsed on a tokenizer worker", () => {
  it("route exactly as when parsed on the main thread (ids, chain, prompt text, Python-faithful values)", {
    timeout: 60_000,
  }, async () => {
    const onWorker = director(1);
    const onMain = director(Number.MAX_SAFE_INTEGER);
    const tools =
      '[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":' +
      '{"12":{"type":"number","default":1.0},"3":{"type":"integer","maximum":12345678901234567890}}}}}]';
    const bodies = [
      conversation(3),
      conversation(500),
      Buffer.from(conversation(90).toString().replace('"messages":', `"tools":${tools},"messages":`)),
      Buffer.from(JSON.stringify({ model: "m", prompt: "a completion prompt ".repeat(50) })),
    ];
    for (const body of bodies) {
      const path = body.includes('"prompt"') ? "/v1/completions" : "/v1/chat/completions";
      const a = await onWorker.route(body, path);
      const b = await onMain.route(body, path);
      expect(a.kind).toBe("routed");
      expect(a).toEqual(b);
    }
    // A multimodal chat is routed on load alone either way (no prompt text, no chain).
    const image = conversation(100);
    const media = Buffer.from(
      image
        .toString()
        .replace('"content":"turn 0', '"content":[{"type":"image_url","image_url":{"url":"x"}}],"x":"turn 0'),
    );
    const m = await onWorker.route(media);
    expect(m).toEqual(await onMain.route(media));
    expect(m.promptText).toBe("");
  });

  it("answers the same client mistakes with the same 4xx", { timeout: 60_000 }, async () => {
    const onWorker = director(1);
    const onMain = director(Number.MAX_SAFE_INTEGER);
    const tooMany = new TokenizationService({
      config: {
        ...configSchema.parse({}).tokenizer,
        workerThreads: 1,
        workerParseBytes: 1,
        maxChatMessages: 10,
      },
      logger,
    });
    services.push(tooMany);
    const bad = [
      Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), // not UTF-8
      Buffer.from('{"model":"m","messages":[{"role":"user","content":"x"}'), // cut short
      Buffer.from(`[${'{"model":"m"},'.repeat(1000)}{}]`), // not an object
      Buffer.from('{"messages":[]}'), // no model
      Buffer.from('{"model":"m","messages":{"role":"user"}}'), // messages not an array
      Buffer.from('{"model":"m","cache_salt":5,"messages":[]}'),
      Buffer.from(`{"model":"m","messages":${"[".repeat(5000)}${"]".repeat(5000)}}`), // too deep
    ];
    for (const body of bad) {
      const a = await onWorker.route(body);
      expect(a.kind).toBe("rejected");
      expect(a.status).toBe(400);
      expect(a).toEqual(await onMain.route(body));
    }
    const err = await tooMany
      .tokenize(
        "m",
        "/v1/chat/completions",
        ((await tooMany.parseOnWorker(conversation(11))) as { body: never }).body,
        conversation(11),
      )
      .catch((e: unknown) => e);
    expect((err as { httpStatus: number }).httpStatus).toBe(413);
  });

  it("leaves a large conversation's messages to the worker: the main thread never parses or holds them", {
    timeout: 120_000,
  }, async () => {
    // What the tokenizer is handed on the main thread, through the real Director and service.
    const tokenizer = new TokenizationService({
      config: { ...configSchema.parse({}).tokenizer, workerThreads: 1 },
      logger,
    });
    services.push(tokenizer);
    const seen: Record<string, unknown>[] = [];
    const pod = anEndpoint("10.0.0.1:8000");
    const d = new Director({
      tokenizer: {
        tokenize: (model, endpoint, body, raw, hash) => {
          seen.push(body);
          return tokenizer.tokenize(model, endpoint, body, raw, hash);
        },
        parseOnWorker: (raw) => tokenizer.parseOnWorker(raw),
      },
      hasher: new RequestHasher(
        { scheme: "sha256_cbor_64bit", hashSeed: "42", comparable: false },
        new LearntBlockSize(16, logger),
      ),
      scheduler: recordingScheduler(pod),
      endpoints: staticSource([pod]),
      logger,
      recorder: new RouteMetrics(new Metrics()),
    });
    const route = (body: Uint8Array) => d.route(aRouteRequest(body));
    // 20,000 messages, ~0.6 MB: past the 256 KiB default. Parsed on the main thread, the 100,000-message
    // body of bench/event-loop-lag.bench.ts held the loop 100 ms plus 75 ms of major GC there.
    const big = conversation(20_000, "ok");
    expect(big.length).toBeGreaterThan(256 * 1024);
    expect((await route(big)).kind).toBe("routed");
    expect(seen[0]!.messages).toBeUndefined();
    expect(offloadedMessages(seen[0]!)?.count).toBe(20_000);
    expect(seen[0]!.model).toBe("Qwen3-32B");
    // A small body is parsed where it arrives (no round trip).
    expect((await route(conversation(3))).kind).toBe("routed");
    expect(Array.isArray(seen[1]!.messages)).toBe(true);
  });
});
