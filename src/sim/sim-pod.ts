// One simulated vLLM pod on real sockets: an HTTP server with vLLM's OpenAI routes and /metrics, an Engine
// with its BlockManager, and a ZeroMQ KV-event publisher. Prompts are rendered and tokenized exactly as
// vLLM would (kvpick's TokenizationService) and hashed with kvpick's BlockHasher, so the pod's events carry
// the hashes a real v0.10 pod with the same seed would publish.
// With `kvEventsReplay` the pod also binds vLLM's replay ROUTER (`replay_endpoint`) over its last
// `bufferSteps` batches. Simulator-only routes: POST /sim/restart (engine restart: in-flight requests die,
// empty cache, publisher seq back to 0, replay ring emptied, no AllBlocksCleared), POST /sim/faults (JSON
// knobs), POST /reset_prefix_cache (vLLM dev route).
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type HashAlgo, isReproducible } from "../config/schema.js";
import { EppError } from "../errors.js";
import { BlockHasher } from "../kv-index/block-hash.js";
import type { Logger } from "../observability/logger.js";
import type { TokenizationService } from "../tokenization/tokenization-service.js";
import { BlockManager } from "./block-manager.js";
import type { SimClock } from "./clock.js";
import type { EngineConfig } from "./engine-config.js";
import { Engine, type FinishedRequest } from "./engine.js";
import type { EventLayout } from "./kv-event-encoder.js";
import { SimKvEventPublisher } from "./kv-event-publisher.js";
import type { ReplayLayout } from "./kv-event-replay-server.js";
import { metricsPage } from "./metrics-page.js";
import {
  type ApiKind,
  DONE,
  errorBody,
  fullResponse,
  streamChunk,
  usage,
  usageChunk,
} from "./openai-responses.js";
import { fedTokens, type OutputVocabulary, outputText } from "./output-vocabulary.js";
import { type Rng, seededRng } from "./random.js";

export interface SimFaults {
  /** Fraction of KV-event batches lost on the wire (seq consumed → the EPP sees a gap; still in the replay ring). */
  dropEventFraction: number;
  /** Simulated seconds each event batch is held back. */
  eventDelaySeconds: number;
  /** Fraction of inference requests answered 500. */
  failRequestFraction: number;
  /** Real milliseconds `/metrics` waits before answering (a slow scrape; kvpick times out at 1 s). */
  metricsDelayMs: number;
  /** `/metrics` answers 500 (a failing scrape). */
  failMetrics: boolean;
  /** Replay replies stop after this many batches, end marker included (a dropped tail); 0 = off. */
  replayDropTailAfter: number;
}

export interface SimPodOptions {
  ip: string;
  /** 0 = any free port. */
  port: number;
  model: string;
  engine: EngineConfig;
  hashAlgo: HashAlgo;
  hashSeed: string;
  clock: SimClock;
  tokenizer: TokenizationService;
  vocabulary: OutputVocabulary;
  logger: Logger;
  /** ZeroMQ endpoint: connect to it (EPP bind mode) or bind it when it has `*` (EPP connect mode). */
  kvEventsEndpoint: string | null;
  /** Topic pod id: "ip" (reference topic kv@<ip>@<model>) or "ip:port" (pods sharing an IP). */
  topicPodId: "ip" | "ip:port";
  eventLayout?: EventLayout;
  /** vLLM's replay socket: bound at `endpoint` (e.g. tcp://<ip>:5558), reply layout, ring size in batches. */
  kvEventsReplay?: { endpoint: string; layout?: ReplayLayout; bufferSteps?: number } | null;
  /** max_tokens of chat requests that give none (vLLM would generate to EOS; the simulator has none). */
  defaultMaxTokens?: number;
  faults?: Partial<SimFaults>;
  seed?: number;
}

export class SimPod {
  readonly options: SimPodOptions;
  readonly faults: SimFaults;
  engine: Engine;
  publisher: SimKvEventPublisher | null = null;
  readonly #server: Server;
  readonly #hasher: BlockHasher;
  readonly #log: Logger;
  readonly #rng: Rng;
  readonly #inflight = new Set<ServerResponse>();
  #port = 0;
  #nextId = 0;

  constructor(options: SimPodOptions) {
    this.options = options;
    this.faults = {
      dropEventFraction: 0,
      eventDelaySeconds: 0,
      failRequestFraction: 0,
      metricsDelayMs: 0,
      failMetrics: false,
      replayDropTailAfter: 0,
      ...options.faults,
    };
    this.#rng = seededRng(options.seed ?? 7);
    // vLLM's pickle algos (sha256, xxhash) cannot be reproduced outside Python: the simulator stands in with
    // sha256_cbor under a seed no kvpick configuration can name, so only token keys can match its blocks.
    const pickle = !isReproducible(options.hashAlgo);
    this.#hasher = new BlockHasher({
      scheme: isReproducible(options.hashAlgo) ? options.hashAlgo : "sha256_cbor",
      hashSeed: pickle ? `\u0000pickle:${options.hashAlgo}:${options.hashSeed}` : options.hashSeed,
      blockSize: options.engine.blockSize,
    });
    this.#log = options.logger.child({ component: "sim-pod", pod: options.ip });
    this.engine = this.#newEngine();
    this.#server = createServer((req, res) => void this.#handle(req, res));
    this.#server.keepAliveTimeout = 60_000;
  }

  get address(): string {
    return `${this.options.ip}:${this.#port}`;
  }
  get port(): number {
    return this.#port;
  }
  get topic(): string {
    const id = this.options.topicPodId === "ip" ? this.options.ip : this.address;
    return `kv@${id}@${this.options.model}`;
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(this.options.port, this.options.ip, () => {
        this.#server.off("error", reject);
        resolve();
      });
    });
    this.#port = (this.#server.address() as AddressInfo).port;
    if (this.options.kvEventsEndpoint !== null) {
      this.publisher = new SimKvEventPublisher({
        endpoint: this.options.kvEventsEndpoint,
        topic: this.topic,
        clock: this.options.clock,
        layout: this.options.eventLayout ?? "v0.10.0",
        dropFraction: this.faults.dropEventFraction,
        delaySeconds: this.faults.eventDelaySeconds,
        rng: seededRng((this.options.seed ?? 7) + 1),
        logger: this.#log,
        ...(this.options.kvEventsReplay == null
          ? {}
          : {
              replayEndpoint: this.options.kvEventsReplay.endpoint,
              ...(this.options.kvEventsReplay.layout === undefined
                ? {}
                : { replayLayout: this.options.kvEventsReplay.layout }),
              ...(this.options.kvEventsReplay.bufferSteps === undefined
                ? {}
                : { bufferSteps: this.options.kvEventsReplay.bufferSteps }),
            }),
      });
      await this.publisher.start();
      this.setFaults({});
    }
    this.#log.info(
      { address: this.address, topic: this.topic, replayEndpoint: this.publisher?.replayEndpoint ?? null },
      "simulated vLLM pod started",
    );
    return this;
  }

  /** An engine restart: in-flight requests fail, the cache is empty, the publisher starts again at seq 0. */
  async restart(): Promise<void> {
    this.engine.stop();
    for (const res of this.#inflight) res.destroy();
    this.#inflight.clear();
    this.engine = this.#newEngine();
    await this.publisher?.restart();
  }

  setFaults(f: Partial<SimFaults>): void {
    Object.assign(this.faults, f);
    if (this.publisher !== null) {
      this.publisher.dropFraction = this.faults.dropEventFraction;
      this.publisher.delaySeconds = this.faults.eventDelaySeconds;
      const replay = this.publisher.replayServer;
      if (replay !== null) replay.dropTailAfter = this.faults.replayDropTailAfter;
    }
  }

  async close(): Promise<void> {
    this.engine.stop();
    await this.publisher?.close();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #newEngine(): Engine {
    const cfg = this.options.engine;
    return new Engine({
      config: cfg,
      blocks: new BlockManager({ numGpuBlocks: cfg.numGpuBlocks, blockSize: cfg.blockSize }),
      clock: this.options.clock,
      onEvents: (events, time) =>
        this.publisher?.publish({ ts: this.options.clock.epochSeconds(time), events }),
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?", 1)[0]!;
    try {
      if (req.method === "GET" && path === "/health") return void res.writeHead(200).end();
      if (req.method === "GET" && path === "/metrics") {
        if (this.faults.metricsDelayMs > 0)
          await new Promise((r) => setTimeout(r, this.faults.metricsDelayMs));
        if (this.faults.failMetrics) return this.#error(res, 500, "metrics unavailable (simulated fault)");
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
        return void res.end(
          metricsPage({
            model: this.options.model,
            config: this.options.engine,
            hashAlgo: this.options.hashAlgo,
            stats: this.engine.snapshot(),
          }),
        );
      }
      if (req.method === "GET" && path === "/v1/models") return this.#json(res, 200, this.#models());
      if (req.method !== "POST") return this.#error(res, 404, `Not Found: ${path}`);
      const raw = await readBody(req);
      if (path === "/reset_prefix_cache") {
        const ok = this.engine.resetPrefixCache();
        return void res.writeHead(ok ? 200 : 400).end();
      }
      if (path === "/sim/restart") {
        await this.restart();
        return this.#json(res, 200, { restarted: true });
      }
      if (path === "/sim/faults") {
        this.setFaults(JSON.parse(raw.toString("utf8") || "{}") as Partial<SimFaults>);
        return this.#json(res, 200, this.faults);
      }
      if (path === "/v1/chat/completions") return await this.#inference(res, "chat", raw);
      if (path === "/v1/completions") return await this.#inference(res, "completion", raw);
      return this.#error(res, 404, `Not Found: ${path}`);
    } catch (err) {
      this.#log.warn({ err: (err as Error).message, path }, "sim pod request failed");
      if (!res.headersSent) this.#error(res, 500, "internal error");
      else res.destroy();
    }
  }

  async #inference(res: ServerResponse, kind: ApiKind, raw: Buffer): Promise<void> {
    let body: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(raw.toString("utf8"));
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))
        throw new Error("not an object");
      body = parsed as Record<string, unknown>;
    } catch {
      return this.#error(res, 400, "invalid JSON body");
    }
    if (body.model !== this.options.model)
      return this.#error(res, 404, `The model \`${String(body.model)}\` does not exist.`);
    if (this.faults.failRequestFraction > 0 && this.#rng() < this.faults.failRequestFraction)
      return this.#error(res, 500, "simulated failure");
    let prompt: Uint32Array;
    try {
      const endpoint = kind === "chat" ? "/v1/chat/completions" : "/v1/completions";
      prompt = (await this.options.tokenizer.tokenize(this.options.model, endpoint, body)).tokenIds;
    } catch (err) {
      if (err instanceof EppError && err.code === "EPP_BAD_REQUEST")
        return this.#error(res, 400, err.message);
      throw err;
    }
    const requested = body.max_completion_tokens ?? body.max_tokens;
    // vLLM: completions default to 16 (OpenAI); chat runs to EOS, which the simulator replaces by a default.
    const maxTokens =
      typeof requested === "number"
        ? requested
        : kind === "chat"
          ? (this.options.defaultMaxTokens ?? 256)
          : 16;
    if (!Number.isInteger(maxTokens) || maxTokens < 1)
      return this.#error(res, 400, "max_tokens must be at least 1");
    const stream = body.stream === true;
    const so = body.stream_options as { include_usage?: unknown } | undefined;
    const includeUsage = so?.include_usage === true;
    const cacheSalt = typeof body.cache_salt === "string" ? body.cache_salt : null;
    const fed = fedTokens(prompt, maxTokens, this.options.vocabulary);
    const chain = this.#hasher.hash(fed, { cacheSalt });
    const ids = {
      id: `${kind === "chat" ? "chatcmpl" : "cmpl"}-${randomBytes(16).toString("hex")}`,
      created: Math.floor(Date.now() / 1000),
      model: this.options.model,
    };
    const vocab = this.options.vocabulary;
    const engineId = `${this.#nextId++}`;
    const texts: string[] = [];
    this.#inflight.add(res);
    const finished = new Promise<FinishedRequest>((resolve) => {
      try {
        this.engine.add({
          id: engineId,
          tokenIds: fed,
          chain,
          promptTokens: prompt.length,
          maxTokens,
          onToken: (i) => {
            const text = outputText(vocab, i);
            if (!stream) return void texts.push(text);
            if (i === 0) res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8" });
            res.write(streamChunk(kind, ids, text, i === 0, i === maxTokens - 1 ? "length" : null));
          },
          onFinish: resolve,
        });
      } catch (err) {
        if (err instanceof RangeError) {
          this.#error(res, 400, err.message);
          resolve({ aborted: true } as FinishedRequest);
        } else throw err;
      }
    });
    const onClose = () => this.engine.abort(engineId);
    res.on("close", onClose);
    const f = await finished;
    res.off("close", onClose);
    this.#inflight.delete(res);
    if (f.aborted) {
      if (!res.writableEnded) res.destroy();
      return;
    }
    const u = usage(f.promptTokens, f.outputTokens, f.cachedTokens);
    if (stream) {
      if (includeUsage) res.write(usageChunk(kind, ids, u));
      res.end(DONE);
    } else {
      this.#json(res, 200, fullResponse(kind, ids, texts.join(""), u));
    }
  }

  #models(): object {
    const m = this.options.model;
    return {
      object: "list",
      data: [
        {
          id: m,
          object: "model",
          created: Math.floor(Date.now() / 1000),
          owned_by: "vllm",
          root: m,
          parent: null,
          max_model_len: this.options.engine.maxModelLen,
          permission: [],
        },
      ],
    };
  }

  #json(res: ServerResponse, status: number, value: unknown): void {
    const body = JSON.stringify(value);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  }

  #error(res: ServerResponse, status: number, message: string): void {
    const body = errorBody(status, message);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  }
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => parts.push(c));
    req.on("end", () => resolve(Buffer.concat(parts)));
    req.on("error", reject);
  });
}
