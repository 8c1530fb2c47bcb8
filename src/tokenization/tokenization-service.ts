// Request body → the prompt token ids vLLM would prefill. Renders chat bodies (chat-request.ts), cuts the
// prompt at added tokens and takes each text section's ids from an exact LRU cache (segment-encoder.ts,
// token-cache.ts); uncached text beyond `workerThresholdChars` is encoded on a piscina worker pool so the
// event loop never stalls on a cold long prompt, and a conversation of more than WORKER_RENDER_MESSAGES
// messages is rendered there too (chat-render-task.ts). `maxChatMessages` bounds what one request may cost.
import { performance } from "node:perf_hooks";
import { Piscina } from "piscina";
import { badRequest, EppError } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import type { Service } from "../service-group.js";
import { buildChatContext, renderChat } from "./chat-request.js";
import { ChatTemplate } from "./chat-template.js";
import { completionPrompt } from "./completion-prompt.js";
import { SegmentEncoder } from "./segment-encoder.js";
import { type CacheNamespace, TokenCache } from "./token-cache.js";
import {
  bundledTokenizerDir,
  loadTokenizerFiles,
  resolveTokenizerDir,
  type TokenizerFiles,
} from "./tokenizer-files.js";
import {
  type BodySummary,
  offloadedMessages,
  WORKER_PARSE_BYTES,
  withOffloadedMessages,
} from "./body-summary.js";
import type { ChatTaskResult, HashTask } from "./chat-render-task.js";
import type { WorkerResult, WorkerTask } from "./tokenize-worker.js";

export type OpenAiEndpoint = "/v1/chat/completions" | "/v1/completions";

export interface TokenizeResult {
  /** The prompt token ids vLLM would prefill. */
  tokenIds: Uint32Array;
  /** Where the work ran: cache = every section was cached (or the prompt was given as ids). */
  mode: "cache" | "main" | "worker";
  renderMicros: number;
  tokenizeMicros: number;
  /** The block hashes, when `hash` was given and the work ran on a worker (else the caller hashes). */
  blockHashes?: BigUint64Array;
}

interface LoadedTokenizer {
  files: TokenizerFiles;
  encoder: SegmentEncoder;
  /** The tokenizer's default template, or null when it has none. */
  template: ChatTemplate | null;
  ns: CacheNamespace;
  /** Section-0 entries, for tokenizers whose first section encodes differently. */
  ns0: CacheNamespace;
}

/** Request-level templates compiled recently (clients repeat the same one); small and bounded. */
const MAX_REQUEST_TEMPLATES = 32;

/**
 * Default of `tokenizer.workerRenderMessages`: conversations longer than this render on a worker (when the
 * request's raw body is at hand). Rendering costs ~35 µs per message on the main thread, so 64 messages hold
 * the loop ~2 ms at most; beyond that the worker's round trip (~0.2 ms) is the cheaper stall.
 */
export const WORKER_RENDER_MESSAGES = 64;

/** Where the service reports its work (observability/tokenization-metrics.ts implements it). */
export interface TokenizationRecorder {
  /** One prompt rendered and tokenized, by where it ran, in seconds. */
  tokenized(mode: "cache" | "main" | "worker", seconds: number): void;
  /** One prompt's text segments: found in the cache, tokenized; the cache's size afterwards. */
  segmentsLookedUp(hits: number, misses: number, cacheBytes: number): void;
}

/** What the service needs of the `tokenizer` config section (the composition root passes that section). */
export interface TokenizerSettings {
  /** Served model name → tokenizer directory; models not listed use `defaultTokenizerDir`. */
  models: Record<string, { tokenizerDir: string }>;
  /** null = the bundled Qwen3 tokenizer. */
  defaultTokenizerDir: string | null;
  /** Memory bound of the token-id cache, bytes. */
  cacheBytes: number;
  /** Prompts with more uncached characters than this are tokenized on a worker thread. */
  workerThresholdChars: number;
  /** Longest chat `messages` array accepted (413 beyond). */
  maxChatMessages: number;
  /** Worker threads; 0 = everything on the main thread. */
  workerThreads: number;
  /** Chats with more messages than this render on a worker (default WORKER_RENDER_MESSAGES; 0 = every chat). */
  workerRenderMessages?: number;
  /** Bodies of at least this many bytes are parsed on a worker (default WORKER_PARSE_BYTES). */
  workerParseBytes?: number;
}

export class TokenizationService implements Service {
  readonly name = "tokenization";
  readonly #config: TokenizerSettings;
  readonly #log: Logger;
  readonly #metrics: TokenizationRecorder | undefined;
  readonly #cache: TokenCache;
  readonly #loaded = new Map<string, Promise<LoadedTokenizer>>();
  readonly #requestTemplates = new Map<string, ChatTemplate>();
  #pool: Piscina<WorkerTask, WorkerResult> | null = null;
  /** Bodies copied to shared memory for the workers, while the request holds its body (see #shared). */
  readonly #sharedBodies = new WeakMap<Uint8Array, Uint8Array>();

  constructor(options: { config: TokenizerSettings; logger: Logger; metrics?: TokenizationRecorder }) {
    this.#config = options.config;
    this.#log = options.logger.child({ component: "tokenization" });
    this.#metrics = options.metrics;
    this.#cache = new TokenCache(options.config.cacheBytes);
  }

  /** Tokenizer directory of a served model name (`bundled:<family>` resolved to the shipped package). */
  dirFor(model: string): string {
    const configured = Object.hasOwn(this.#config.models, model)
      ? this.#config.models[model]?.tokenizerDir
      : undefined;
    return resolveTokenizerDir(configured ?? this.#config.defaultTokenizerDir ?? bundledTokenizerDir());
  }

  /**
   * Loads a model's tokenizer now (at startup), so the first request does not pay for parsing
   * tokenizer.json and a bad tokenizer directory is reported before traffic arrives.
   */
  async warm(model: string): Promise<string> {
    const dir = this.dirFor(model);
    await this.#load(dir);
    return dir;
  }

  /**
   * `raw` is the body's bytes as received (the parse of which is `body`): with it, a long conversation is
   * rendered on a worker instead of the main thread. Throws EPP_BODY_TOO_LARGE (413) for a conversation
   * longer than `maxChatMessages`, EPP_BAD_REQUEST (400) for what the template or vLLM would refuse.
   * `hash`: how the caller hashes the ids, so a worker that rendered a long conversation hashes it as well.
   */
  async tokenize(
    model: string,
    endpoint: OpenAiEndpoint,
    body: Record<string, unknown>,
    raw?: Uint8Array,
    hash?: HashTask,
  ): Promise<TokenizeResult> {
    const tk = await this.#load(this.dirFor(model));
    const t0 = performance.now();
    let text: string;
    let addSpecial: boolean;
    if (endpoint === "/v1/chat/completions") {
      const messages = body.messages;
      const offloaded = offloadedMessages(body);
      const count = offloaded?.count ?? (Array.isArray(messages) ? messages.length : 0);
      if (count > this.#config.maxChatMessages) {
        throw new EppError(
          "EPP_BODY_TOO_LARGE",
          `messages: ${count} messages exceed tokenizer.maxChatMessages (${this.#config.maxChatMessages})`,
        );
      }
      // A body parsed on a worker has no messages here: it renders there too.
      const pool =
        (offloaded !== undefined || count > (this.#config.workerRenderMessages ?? WORKER_RENDER_MESSAGES)) &&
        raw !== undefined
          ? this.#workers()
          : null;
      if (offloaded !== undefined && pool === null) {
        throw new EppError(
          "EPP_INTERNAL",
          "a body parsed on a worker must be rendered there (raw body missing)",
        );
      }
      if (pool !== null) {
        const templateSource = this.#templateFor(tk, body).source;
        const result = (await pool.run({
          dir: tk.files.dir,
          sections: [],
          chat: {
            raw: this.#shared(raw!),
            templateSource,
            cacheBytes: Math.floor(this.#config.cacheBytes / Math.max(1, this.#config.workerThreads)),
            ...(hash === undefined ? {} : { hash }),
          },
        })) as ChatTaskResult;
        if ("error" in result) throw badRequest(result.error.message);
        const t2 = performance.now();
        this.#metrics?.tokenized("worker", (t2 - t0) / 1e3);
        // Render and encode are one task on the worker: the time is reported as tokenizing.
        return {
          tokenIds: result.ids,
          mode: "worker",
          renderMicros: 0,
          tokenizeMicros: (t2 - t0) * 1e3,
          ...(result.blockHashes === undefined ? {} : { blockHashes: result.blockHashes }),
        };
      }
      text = this.#render(tk, body);
      addSpecial = false; // vLLM chat default: the template writes every special token itself
    } else {
      const prompt = completionPrompt(body.prompt);
      if (typeof prompt !== "string") {
        return { tokenIds: prompt, mode: "cache", renderMicros: 0, tokenizeMicros: 0 };
      }
      text = prompt;
      addSpecial = true; // vLLM completions default: BOS for Llama-style tokenizers, nothing for Qwen
    }
    const t1 = performance.now();
    const { ids, mode } = await this.#encode(tk, text, addSpecial);
    const t2 = performance.now();
    this.#metrics?.tokenized(mode, (t2 - t0) / 1e3);
    return { tokenIds: ids, mode, renderMicros: (t1 - t0) * 1e3, tokenizeMicros: (t2 - t1) * 1e3 };
  }

  /**
   * A large body parsed on a worker (body-summary.ts), or null: parse it here (small, or no workers). A chat
   * body parsed there carries its messages' count, media flag and JSON text instead of the messages
   * (`offloadedMessages`), and `tokenize` renders it from `raw` on a worker.
   */
  parseOnWorker(raw: Uint8Array): Promise<BodySummary> | null {
    if (raw.byteLength < (this.#config.workerParseBytes ?? WORKER_PARSE_BYTES)) return null;
    const pool = this.#workers();
    if (pool === null) return null;
    return pool
      .run({ dir: "", sections: [], parse: this.#shared(raw) })
      .then((r) => withOffloadedMessages(r as BodySummary));
  }

  async renderChat(model: string, body: Record<string, unknown>): Promise<string> {
    return this.#render(await this.#load(this.dirFor(model)), body);
  }

  /**
   * Loads every configured tokenizer and the default one before serving, so the first request does not pay
   * for parsing tokenizer.json; a failure is logged, not fatal (that model's requests are routed on load).
   * Workers start with the first cold prompt.
   */
  async start(): Promise<void> {
    for (const model of ["", ...Object.keys(this.#config.models)]) {
      const name = model || "(default)";
      try {
        this.#log.info({ model: name, tokenizerDir: await this.warm(model) }, "tokenizer loaded");
      } catch (err) {
        this.#log.error(
          { model: name, err: err instanceof Error ? err.message : String(err) },
          "tokenizer failed to load: its requests will be routed on load alone",
        );
      }
    }
  }

  /** Ends the worker threads (their in-flight tasks are cancelled) and empties the cache. */
  async stop(_graceMs?: number): Promise<void> {
    const pool = this.#pool;
    this.#pool = null;
    this.#cache.clear();
    if (pool) await pool.destroy();
  }

  #render(tk: LoadedTokenizer, body: Record<string, unknown>): string {
    const template = this.#templateFor(tk, body);
    return renderChat(template, buildChatContext(body, template, tk.files.specialTokens));
  }

  /** transformers' choice: the request's template (or a named one), "tool_use" with tools, else the default. */
  #templateFor(tk: LoadedTokenizer, body: Record<string, unknown>): ChatTemplate {
    const requested = body.chat_template;
    let source: string | undefined;
    if (typeof requested === "string" && requested.length > 0) {
      // vLLM (resolve_chat_template → transformers) treats a name it does not know as the template itself.
      source = tk.files.namedTemplates.get(requested) ?? requested;
    } else if (requested !== undefined && requested !== null) {
      throw badRequest("chat_template: expected a string");
    } else if (Array.isArray(body.tools) && tk.files.namedTemplates.has("tool_use")) {
      source = tk.files.namedTemplates.get("tool_use");
    }
    if (source === undefined) {
      if (tk.template === null) throw badRequest(`the tokenizer at ${tk.files.dir} has no chat template`);
      return tk.template;
    }
    let compiled = this.#requestTemplates.get(source);
    if (compiled === undefined) {
      try {
        compiled = new ChatTemplate(source);
      } catch (err) {
        throw badRequest(`chat_template: cannot parse (${(err as Error).message})`, err);
      }
      if (this.#requestTemplates.size >= MAX_REQUEST_TEMPLATES) this.#requestTemplates.clear();
      this.#requestTemplates.set(source, compiled);
    }
    return compiled;
  }

  #load(dir: string): Promise<LoadedTokenizer> {
    let p = this.#loaded.get(dir);
    if (p === undefined) {
      p = this.#loadNow(dir);
      // A failed load is retried by the next request (the directory may be mounted later).
      p.catch(() => this.#loaded.delete(dir));
      this.#loaded.set(dir, p);
    }
    return p;
  }

  async #loadNow(dir: string): Promise<LoadedTokenizer> {
    const started = performance.now();
    const files = await loadTokenizerFiles(dir);
    let encoder: SegmentEncoder;
    let template: ChatTemplate | null = null;
    try {
      encoder = new SegmentEncoder(files);
    } catch (err) {
      throw new EppError(
        "EPP_TOKENIZER",
        `tokenizer dir ${dir}: cannot build the tokenizer: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    try {
      if (files.chatTemplate !== null) template = new ChatTemplate(files.chatTemplate);
    } catch (err) {
      throw new EppError(
        "EPP_TOKENIZER",
        `tokenizer dir ${dir}: cannot parse the chat template: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    this.#log.info({ dir, ms: Math.round(performance.now() - started) }, "tokenizer loaded");
    const pool = this.#workers();
    if (pool) {
      // Warm the workers now, so the first cold long prompt does not also wait for a tokenizer load.
      for (let i = 0; i < this.#config.workerThreads; i++) {
        pool
          .run({ dir, sections: [] })
          .catch((err: unknown) => this.#log.warn({ dir, err }, "worker warm-up failed"));
      }
    }
    return {
      files,
      encoder,
      template,
      ns: this.#cache.namespace(dir),
      ns0: this.#cache.namespace(`${dir}\u0000first`),
    };
  }

  /**
   * The body's bytes in shared memory, for a worker task: posting a plain 3 MB buffer serialises and copies it
   * on the main thread (tens of ms for the largest bodies), a SharedArrayBuffer is handed over as is. One copy
   * per body, reused by its parse and its render task.
   */
  #shared(raw: Uint8Array): Uint8Array {
    if (raw.buffer instanceof SharedArrayBuffer) return raw;
    let shared = this.#sharedBodies.get(raw);
    if (shared === undefined) {
      shared = new Uint8Array(new SharedArrayBuffer(raw.byteLength));
      shared.set(raw);
      this.#sharedBodies.set(raw, shared);
    }
    return shared;
  }

  #workers(): Piscina<WorkerTask, WorkerResult> | null {
    if (this.#config.workerThreads === 0) return null;
    this.#pool ??= new Piscina<WorkerTask, WorkerResult>({
      // Resolved beside this file, so it works from dist/ and from any working directory.
      filename: new URL("./tokenize-worker.js", import.meta.url).href,
      minThreads: this.#config.workerThreads,
      maxThreads: this.#config.workerThreads,
      idleTimeout: 2 ** 31 - 1, // a restarted worker would reload the tokenizer (~1 s)
    });
    return this.#pool;
  }

  async #encode(
    tk: LoadedTokenizer,
    text: string,
    addSpecial: boolean,
  ): Promise<{ ids: Uint32Array; mode: TokenizeResult["mode"] }> {
    const enc = tk.encoder;
    const threshold = this.#config.workerThresholdChars;
    if (!enc.segmentable) {
      const pool = text.length > threshold ? this.#workers() : null;
      if (pool) {
        const [ids] = (await pool.run({
          dir: tk.files.dir,
          sections: [],
          whole: { text, addSpecialTokens: addSpecial },
        })) as Uint32Array[];
        return { ids: ids!, mode: "worker" };
      }
      return { ids: enc.encodeWhole(text, addSpecial), mode: "main" };
    }
    const pieces = enc.split(text);
    const found: (Uint32Array | undefined)[] = new Array(pieces.length);
    const pending: (string | undefined)[] = new Array(pieces.length);
    const misses = new Map<string, { text: string; section: number; ns: CacheNamespace }>();
    let missChars = 0;
    let hits = 0;
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i]!;
      if (p.text === undefined) continue;
      const ns = enc.firstSectionDiffers && p.section === 0 ? tk.ns0 : tk.ns;
      const ids = this.#cache.get(ns, p.text);
      if (ids !== undefined) {
        found[i] = ids;
        hits++;
      } else {
        // Dedup within the request; section-0 entries get their own key space.
        const key = ns === tk.ns0 ? `\u0000${p.text}` : p.text;
        pending[i] = key;
        if (!misses.has(key)) {
          misses.set(key, { text: p.text, section: p.section, ns });
          missChars += p.text.length;
        }
      }
    }
    let mode: TokenizeResult["mode"] = "cache";
    const computed = new Map<string, Uint32Array>();
    if (misses.size > 0) {
      const list = [...misses.entries()];
      const pool = missChars > threshold ? this.#workers() : null;
      let results: Uint32Array[];
      if (pool) {
        mode = "worker";
        results = (await pool.run({
          dir: tk.files.dir,
          sections: list.map(([, m]) => ({ text: m.text, section: m.section })),
        })) as Uint32Array[];
      } else {
        mode = "main";
        results = list.map(([, m]) => enc.encodeSection(m.text, m.section));
      }
      list.forEach(([key, m], i) => {
        computed.set(key, results[i]!);
        this.#cache.set(m.ns, m.text, results[i]!);
      });
    }
    this.#metrics?.segmentsLookedUp(hits, misses.size, this.#cache.bytes);
    let total = 0;
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i]!;
      if (p.text === undefined) total++;
      else {
        found[i] ??= computed.get(pending[i]!)!;
        total += found[i]!.length;
      }
    }
    let out: Uint32Array = new Uint32Array(total);
    let at = 0;
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i]!;
      if (p.text === undefined) out[at++] = p.id;
      else {
        out.set(found[i]!, at);
        at += found[i]!.length;
      }
    }
    if (addSpecial) out = enc.addSpecialTokens(out) ?? enc.encodeWhole(text, true);
    return { ids: out, mode };
  }
}
