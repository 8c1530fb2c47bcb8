// The service's caching, worker pool and loading behaviour on the bundled Qwen3 tokenizer.
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { configSchema } from "../config/schema.js";
import { EppError } from "../errors.js";
import { BlockHasher } from "../kv-index/block-hash.js";
import { createLogger } from "../observability/logger.js";
import { Metrics } from "../observability/metrics.js";
import { SegmentEncoder } from "./segment-encoder.js";
import { parseRequestJson } from "./python-json.js";
import { TokenizationService } from "./tokenization-service.js";
import { BUNDLED_FAMILIES, bundledTokenizerDir, loadTokenizerFiles } from "./tokenizer-files.js";

const CHAT = "/v1/chat/completions";
const base = configSchema.parse({}).tokenizer;
const silent = createLogger({ level: "silent" });
const SENTENCE = "The travel desk books flights, hotels and trains for employees; 東京 trips need approval. ";
const services: TokenizationService[] = [];
const make = (overrides: Partial<typeof base>, logger = silent, metrics?: Metrics) => {
  const s = new TokenizationService({
    config: { ...base, ...overrides },
    logger,
    ...(metrics ? { metrics: metrics.tokenization } : {}),
  });
  services.push(s);
  return s;
};
afterAll(() => Promise.all(services.map((s) => s.stop())));

describe("TokenizationService", () => {
  it("reuses a long cached system prompt when a new user turn follows", async () => {
    const metrics = new Metrics();
    const svc = make({ workerThreads: 0 }, silent, metrics);
    const system = SENTENCE.repeat(300); // ~6k tokens
    const first = await svc.tokenize("m", CHAT, {
      messages: [
        { role: "system", content: system },
        { role: "user", content: "a" },
      ],
    });
    expect(first.mode).toBe("main");
    const hitsBefore = (await metrics.registry.getSingleMetric("epp_token_cache_hits_total")!.get())
      .values[0]!.value;
    const second = await svc.tokenize("m", CHAT, {
      messages: [
        { role: "system", content: system },
        { role: "user", content: "b?" },
      ],
    });
    const hitsAfter = (await metrics.registry.getSingleMetric("epp_token_cache_hits_total")!.get()).values[0]!
      .value;
    expect(first.tokenIds.length).toBeGreaterThan(5000);
    expect(hitsAfter - hitsBefore).toBeGreaterThanOrEqual(2); // system section and the "assistant\n" tail
    expect(Array.from(second.tokenIds.subarray(0, 3000))).toEqual(
      Array.from(first.tokenIds.subarray(0, 3000)),
    );
    const again = await svc.tokenize("m", CHAT, {
      messages: [
        { role: "system", content: system },
        { role: "user", content: "b?" },
      ],
    });
    expect(again.mode).toBe("cache");
    expect(Array.from(again.tokenIds)).toEqual(Array.from(second.tokenIds));
    const cacheBytes = await metrics.registry.getSingleMetric("epp_token_cache_bytes")!.get();
    expect(cacheBytes.values[0]!.value).toBeGreaterThan(0);
  });

  it("keeps the event loop responsive while a worker tokenizes a cold 30k-token prompt, with equal output", {
    timeout: 120_000,
  }, async () => {
    const onWorker = make({ workerThreads: 1, workerThresholdChars: 1000 });
    const onMain = make({ workerThreads: 0 });
    const body = { messages: [{ role: "user", content: `${SENTENCE.repeat(1700)}#${Date.now()}` }] };
    await onWorker.tokenize("m", CHAT, { messages: [{ role: "user", content: "warm-up" }] }); // loads the tokenizer
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const viaWorker = await onWorker.tokenize("m", CHAT, body);
    clearInterval(timer);
    const viaMain = await onMain.tokenize("m", CHAT, body);
    expect(viaWorker.mode).toBe("worker");
    expect(viaMain.mode).toBe("main");
    expect(viaWorker.tokenIds.length).toBeGreaterThan(30_000);
    expect(Array.from(viaWorker.tokenIds)).toEqual(Array.from(viaMain.tokenIds));
    // The main thread ran its timers while the worker worked (a blocked loop would tick at most once).
    expect(ticks).toBeGreaterThan(5);
  });

  it("loads each tokenizer directory once for concurrent first calls", async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write: (chunk, _enc, cb) => {
        lines.push(String(chunk));
        cb();
      },
    });
    const svc = make({ workerThreads: 0 }, createLogger({ level: "info", destination: sink }));
    const bodies = ["a", "b", "c", "d"].map((c) => ({ messages: [{ role: "user", content: c }] }));
    await Promise.all(bodies.map((b) => svc.tokenize("m", CHAT, b)));
    expect(lines.filter((l) => l.includes("tokenizer loaded")).length).toBe(1);
    expect(lines.join("")).not.toContain('"a"'); // no prompt text in logs
  });

  it("reports a missing or broken tokenizer directory as EPP_TOKENIZER naming the directory", async () => {
    const missing = join(tmpdir(), "kvpick-no-such-dir");
    const svc = make({ workerThreads: 0, models: { other: { tokenizerDir: missing } } });
    const err = await svc
      .tokenize("other", CHAT, { messages: [{ role: "user", content: "x" }] })
      .catch((e: unknown) => e);
    expect((err as EppError).code).toBe("EPP_TOKENIZER");
    expect((err as EppError).message).toContain(missing);
    const broken = await mkdtemp(join(tmpdir(), "kvpick-tok-"));
    await writeFile(join(broken, "tokenizer.json"), "{not json");
    const svc2 = make({ workerThreads: 0, defaultTokenizerDir: broken });
    const err2 = await svc2
      .tokenize("x", CHAT, { messages: [{ role: "user", content: "x" }] })
      .catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(EppError);
    expect((err2 as EppError).code).toBe("EPP_TOKENIZER");
    expect((err2 as EppError).message).toContain(broken);
  });

  it("caches exactly: cached completions equal the library's whole-text encoding on random prompts", {
    timeout: 60_000,
  }, async () => {
    const cached = make({ workerThreads: 0 });
    const enc = new SegmentEncoder(await loadTokenizerFiles(bundledTokenizerDir()));
    const words = ["a", " b", "<|im_start|>", "\n", "東京", "😀", "  ", "<think>", "x1", "é", "e\u0301"];
    let seed = 1;
    const rnd = () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647;
    };
    for (let n = 0; n < 500; n++) {
      const prompt = Array.from(
        { length: 1 + Math.floor(rnd() * 30) },
        () => words[Math.floor(rnd() * words.length)],
      ).join("");
      const { tokenIds } = await cached.tokenize("m", "/v1/completions", { prompt });
      expect(Array.from(tokenIds)).toEqual(Array.from(enc.encodeWhole(prompt, true)));
    }
  });

  it("renders a long conversation on the worker with exactly the main thread's ids", {
    timeout: 60_000,
  }, async () => {
    const body = {
      model: "m",
      tools: [
        { type: "function", function: { name: "book", parameters: { type: "object", properties: {} } } },
      ],
      messages: Array.from({ length: 300 }, (_, i) =>
        i % 3 === 2
          ? { role: "tool", tool_call_id: `c${i}`, content: `result ${i} 東京` }
          : {
              role: i % 3 === 0 ? "user" : "assistant",
              content: i === 0 ? SENTENCE.repeat(40) : `turn ${i}: <think>x</think> ok`,
            },
      ),
    };
    const raw = Buffer.from(JSON.stringify(body));
    const onMain = await make({ workerThreads: 0 }).tokenize("m", CHAT, body, raw);
    const worker = make({ workerThreads: 1 });
    const offMain = await worker.tokenize("m", CHAT, body, raw);
    expect(onMain.mode).toBe("main");
    expect(offMain.mode).toBe("worker");
    expect(offMain.tokenIds.length).toBeGreaterThan(2000);
    expect(Array.from(offMain.tokenIds)).toEqual(Array.from(onMain.tokenIds));
    // Asked to, the worker hashes too, exactly as the caller's hasher would.
    const options = { scheme: "sha256_cbor_64bit", hashSeed: "42", blockSize: 16 } as const;
    const extras = { cacheSalt: "salt", lora: null };
    const hashed = await worker.tokenize("m", CHAT, body, raw, {
      hasher: options,
      extras,
    });
    expect(hashed.blockHashes?.length).toBe(Math.floor(onMain.tokenIds.length / 16));
    expect(Array.from(hashed.blockHashes!)).toEqual(
      Array.from(new BlockHasher(options).hash(onMain.tokenIds, extras)),
    );
    // What the template refuses is still the client's 400 when the worker renders it.
    const bad = { ...body, messages: [...body.messages, { role: "user", content: [{ type: "image_url" }] }] };
    const err = await worker
      .tokenize("m", CHAT, bad, Buffer.from(JSON.stringify(bad)))
      .catch((e: unknown) => e);
    expect((err as EppError).code).toBe("EPP_BAD_REQUEST");
    expect((err as EppError).message).toMatch(/image_url/);
  });

  it("with workerRenderMessages 0 renders every chat on the worker, warm turns from its cache, ids exact", {
    timeout: 120_000,
  }, async () => {
    for (const family of BUNDLED_FAMILIES) {
      const chat = (question: string) => ({
        model: "m",
        messages: [
          { role: "system", content: SENTENCE.repeat(60) },
          { role: "user", content: question },
        ],
      });
      const dir = { defaultTokenizerDir: `bundled:${family}` };
      const main = make({ ...dir, workerThreads: 0 });
      const worker = make({ ...dir, workerThreads: 1, workerRenderMessages: 0 });
      // Same system prompt, new user turns, then a repeat: the worker's cache must never change an id.
      for (const q of ["Book a hotel?", "Book a train to 東京?", "Book a hotel?", "  leading spaces\n\n"]) {
        const body = chat(q);
        const raw = Buffer.from(JSON.stringify(body));
        const onMain = await main.tokenize("m", CHAT, body, raw);
        const offMain = await worker.tokenize("m", CHAT, body, raw);
        expect(onMain.mode).not.toBe("worker");
        expect(offMain.mode).toBe("worker");
        expect(Array.from(offMain.tokenIds)).toEqual(Array.from(onMain.tokenIds));
      }
      // Without the raw body (a caller that has only the parse) it stays on the main thread.
      expect((await worker.tokenize("m", CHAT, chat("x"))).mode).not.toBe("worker");
    }
  });

  it("renders Python-faithful tool values on the worker as on the main thread (1.0, 1e20, big ints, key order)", {
    timeout: 60_000,
  }, async () => {
    const turns = Array.from(
      { length: 80 },
      (_, i) => `{"role":"${i % 2 === 0 ? "user" : "assistant"}","content":"turn ${i}"}`,
    );
    const text = (dflt: string) =>
      `{"model":"m","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":` +
      `{"12":{"type":"number","default":${dflt}},"3":{"type":"integer","maximum":12345678901234567890},"0":{"minimum":1e20}}}}}],` +
      `"messages":[${turns.join(",")}]}`;
    const worker = make({ workerThreads: 1 });
    const main = make({ workerThreads: 0 });
    const ids = async (svc: ReturnType<typeof make>, t: string) => {
      const body = parseRequestJson(t) as Record<string, unknown>;
      const r = await svc.tokenize("m", CHAT, body, Buffer.from(t));
      return { mode: r.mode, ids: Array.from(r.tokenIds) };
    };
    const [onMain, offMain, intDefault] = [
      await ids(main, text("1.0")),
      await ids(worker, text("1.0")),
      await ids(worker, text("1")),
    ];
    expect(offMain.mode).toBe("worker");
    expect(offMain.ids).toEqual(onMain.ids);
    expect(intDefault.ids).not.toEqual(offMain.ids); // 1.0 and 1 render differently, as in Python
  });

  it("answers a conversation longer than maxChatMessages with 413", async () => {
    const svc = make({ workerThreads: 0, maxChatMessages: 3 });
    const messages = Array.from({ length: 4 }, () => ({ role: "user", content: "x" }));
    const err = await svc.tokenize("m", CHAT, { messages }).catch((e: unknown) => e);
    expect((err as EppError).code).toBe("EPP_BODY_TOO_LARGE");
    expect((err as EppError).httpStatus).toBe(413);
    expect((await svc.tokenize("m", CHAT, { messages: messages.slice(1) })).tokenIds.length).toBeGreaterThan(
      0,
    );
  });
});
