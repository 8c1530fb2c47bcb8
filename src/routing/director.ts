// The routing decision for one request (implements ext-proc's Router): parse once, tokenize once, hash
// once, schedule, then audit. The cache signal is an optimisation: if it cannot be computed for a reason
// that is not the client's fault, the request is still routed, on load alone.
import { randomInt } from "node:crypto";
import { EppError } from "../errors.js";
import type { DispatchTicket } from "../endpoints/dispatch-ledger.js";
import type { ResponseObserver, RouteOutcome, RouteRequest, Router } from "../ext-proc/router.js";
import type { BlockExtras, BlockHasher } from "../kv-index/block-hash.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { Endpoint, EndpointSource, PrefixLookup, SchedulingResult } from "../scheduling/types.js";
import type { LoraAdapters } from "./lora-adapters.js";
import { type InferenceRequest, parseInferenceRequest, promptTextOf } from "./openai-request.js";
import { UsageReader } from "./usage-reader.js";

/** The tokenizer as routing needs it (tokenization/tokenization-service.ts implements it). */
export interface PromptTokenizer {
  tokenize(
    model: string,
    endpoint: "/v1/chat/completions" | "/v1/completions",
    body: Record<string, unknown>,
    /** The body's bytes as received (lets a long conversation render off the main thread). */
    raw?: Uint8Array,
    /** How to hash: a tokenizer that worked off the main thread may hash there too (`blockHashes`). */
    hash?: { hasher: Pick<BlockHasher, "scheme" | "hashSeed" | "blockSize">; extras: BlockExtras },
  ): Promise<{
    tokenIds: Uint32Array;
    renderMicros: number;
    tokenizeMicros: number;
    blockHashes?: BigUint64Array;
  }>;
  /** The tokenizer directory a model name resolves to (for the once-per-model diagnostic line). */
  dirFor?(model: string): string;
}

/** The scheduler as routing needs it (scheduling/scheduler.ts implements it). */
export interface RequestScheduler {
  schedule(request: {
    requestId: string;
    model: string;
    targetModel: string;
    blockHashes: BigUint64Array;
    headers: ReadonlyMap<string, string>;
    subsetHint: readonly string[] | null;
    prefixLookup?: PrefixLookup;
    loraAdapter?: string | null;
    promptTokens?: number;
    promptText?: () => string;
    promptValue?: () => unknown;
    cacheSalt?: string | null;
  }): SchedulingResult;
}

/** A shared KV index read per request (shared-index/redis-prefix-source.ts); resolves, never rejects. */
export interface PrefixLookupSource {
  /** The lookup to schedule `chain` with (the local index merged with the shared one, or local alone). */
  lookupFor(chain: BigUint64Array): Promise<PrefixLookup>;
}

/** Where dispatch credit goes (endpoints/endpoint-store.ts implements it). */
export interface DispatchRecorder {
  dispatch(address: string, prefillTokens: number): DispatchTicket;
}

export interface DirectorOptions {
  tokenizer: PromptTokenizer;
  /** Null when kvpick has no hash configuration: every request is routed on load alone. */
  hasher: BlockHasher | null;
  scheduler: RequestScheduler;
  endpoints: EndpointSource;
  logger: Logger;
  metrics: Metrics;
  /** Put every candidate's scores in the response metadata (debugging). */
  emitEndpointScores?: boolean;
  /** The optional shared index (index.redis): one round trip per request before scheduling. */
  sharedIndex?: PrefixLookupSource | null;
  /** LoRA adapters: their hash key and base tokenizer; absent = every model hashed as a base model. */
  loras?: LoraAdapters;
  /** Dispatch credit (scheduling.dispatchCredit): what kvpick routes counts as load until scraped / prefilled. */
  dispatch?: DispatchRecorder | null;
}

const EMPTY_CHAIN = new BigUint64Array(0);

/** Distinct model names reported once each; client-chosen names, so the memory is bounded. */
const MAX_MODELS_REPORTED = 1000;

export class Director implements Router {
  readonly #o: DirectorOptions;
  readonly #log: Logger;
  readonly #modelsSeen = new Set<string>();

  constructor(options: DirectorOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: "director" });
  }

  async route(request: RouteRequest): Promise<RouteOutcome> {
    // 1. Body-less requests (GET /v1/models …) carry no prompt: any ready pod, at once (as GIE does).
    if (request.body.length === 0) return this.#routeBodyless(request);
    const started = performance.now();
    const m = this.#o.metrics;

    // 2. Parse once. A body kvpick cannot read is the client's fault: 400.
    let parsed: InferenceRequest;
    try {
      parsed = parseInferenceRequest(request.path, request.body);
    } catch (err) {
      return this.#reject(request, null, err);
    }
    const parsedAt = performance.now();
    m.stageSeconds.observe({ stage: "parse" }, (parsedAt - started) / 1000);
    if (!this.#modelsSeen.has(parsed.model) && this.#modelsSeen.size < MAX_MODELS_REPORTED)
      this.#firstSight(parsed.model);

    // 3. Tokenize and hash once (scorers read the chain through the scheduling cycle). A LoRA adapter is
    // tokenized as its base model and hashed with its key, as vLLM does.
    let chain: BigUint64Array = EMPTY_CHAIN;
    let promptTokens: number | null = null;
    const lora = this.#o.loras?.resolve(parsed.model) ?? null;
    if (lora !== null && !lora.hashable && parsed.kind !== "other") {
      m.cacheSignalMissing.inc({ reason: "lora-id-unknown" });
    } else if (parsed.kind !== "other" && this.#o.hasher !== null) {
      const endpoint = parsed.kind === "chat" ? "/v1/chat/completions" : "/v1/completions";
      try {
        const model = lora?.tokenizerModel ?? parsed.model;
        const hasher = this.#o.hasher;
        const extras = { cacheSalt: parsed.cacheSalt, lora: lora?.hashKey ?? null };
        const { tokenIds, blockHashes } = await this.#o.tokenizer.tokenize(
          model,
          endpoint,
          parsed.body,
          request.body,
          {
            hasher: { scheme: hasher.scheme, hashSeed: hasher.hashSeed, blockSize: hasher.blockSize },
            extras,
          },
        );
        promptTokens = tokenIds.length;
        const tokenizedAt = performance.now();
        m.stageSeconds.observe({ stage: "tokenize" }, (tokenizedAt - parsedAt) / 1000);
        // Hashed already where a long conversation was rendered (a worker), else here.
        chain = blockHashes ?? hasher.hash(tokenIds, extras);
        m.stageSeconds.observe({ stage: "hash" }, (performance.now() - tokenizedAt) / 1000);
      } catch (err) {
        // The client's fault (400, or 413 for a conversation beyond tokenizer.maxChatMessages): rejected.
        if (err instanceof EppError && err.httpStatus < 500) return this.#reject(request, parsed, err);
        // Not the client's fault (tokenizer files missing, template bug): route without the cache signal.
        m.cacheSignalMissing.inc({ reason: err instanceof EppError ? err.code : "internal" });
        this.#log.warn(
          { "x-request-id": request.requestId, model: parsed.model, err: errorText(err) },
          "tokenization failed: routing on load alone",
        );
      }
    } else if (parsed.kind !== "other") {
      m.cacheSignalMissing.inc({ reason: "no-hash-config" });
    }

    // 4. Shared index (optional): the scheduler is synchronous, so Redis is read here, once per request.
    let prefixLookup: PrefixLookup | undefined;
    const shared = this.#o.sharedIndex;
    if (shared != null && chain.length > 0) {
      const lookupStart = performance.now();
      prefixLookup = await shared.lookupFor(chain);
      m.stageSeconds.observe({ stage: "shared-index" }, (performance.now() - lookupStart) / 1000);
    }

    // 5. Schedule. The prompt text is built only if an estimated scorer asks for it.
    const scoreStart = performance.now();
    let text: string | null = null;
    const result = this.#o.scheduler.schedule({
      requestId: request.requestId,
      model: parsed.model,
      targetModel: parsed.model,
      blockHashes: chain,
      headers: request.headers,
      subsetHint: request.subsetHint,
      ...(prefixLookup === undefined ? {} : { prefixLookup }),
      ...(lora === null || lora.adapter === undefined ? {} : { loraAdapter: lora.adapter }),
      ...(promptTokens === null ? {} : { promptTokens }),
      promptText: () => {
        text ??= promptTextOf(parsed);
        return text;
      },
      promptValue: () => promptValueOf(parsed),
      cacheSalt: parsed.cacheSalt,
    });
    const done = performance.now();
    m.stageSeconds.observe({ stage: "score" }, (done - scoreStart) / 1000);
    if (result.kind === "no-endpoints") {
      return this.#reject(
        request,
        parsed,
        new EppError("EPP_NO_ENDPOINTS", "failed to find endpoint candidates for serving the request"),
      );
    }
    if (result.kind === "all-filtered") {
      return this.#reject(
        request,
        parsed,
        new EppError(
          "EPP_OVERLOADED",
          `failed to find target endpoint: every candidate filtered by ${result.filteredBy}`,
        ),
      );
    }

    // 6. Record and audit. One info line per routed request, no prompt text.
    const schedulingMicros = Math.round((done - started) * 1000);
    m.schedulingSeconds.observe(schedulingMicros / 1e6);
    m.objectiveRequests.inc({ model_name: parsed.model, target_model_name: parsed.model });
    m.endpointPicks.inc({ endpoint: result.endpoint.address });
    m.prefixHitBlocks.observe(result.prefixMatchBlocks);
    if (result.totalBlocks > 0) m.prefixHitRatio.observe(result.prefixMatchBlocks / result.totalBlocks);
    const winner = result.scores[0];
    const runnerUp = result.scores[1];
    this.#log.info(
      {
        "x-request-id": request.requestId,
        model: parsed.model,
        targetModel: parsed.model,
        endpoint: endpointName(result.endpoint),
        Address: result.endpoint.address,
        ...(result.endpoint.name === null ? {} : { NamespacedName: result.endpoint.name }),
        promptTokens,
        prefixMatchBlocks: result.prefixMatchBlocks,
        totalBlocks: result.totalBlocks,
        score: round(winner?.total),
        scores: winner?.byScorer,
        runnerUp: runnerUp?.address ?? null,
        runnerUpScore: round(runnerUp?.total),
        candidates: result.scores.length,
        schedulingLatencyUs: schedulingMicros,
      },
      "Request handled",
    );
    const predicted =
      this.#o.hasher === null
        ? 0
        : (result.cachedTokens ?? result.prefixMatchBlocks * this.#o.hasher.blockSize);
    // 7. Dispatch credit: the uncached part of the prompt is load on the pod until a scrape shows it and, for
    // a streaming response, until its first chunk (a non-streaming one shows nothing before the end).
    const ticket =
      this.#o.dispatch?.dispatch(
        result.endpoint.address,
        promptTokens === null ? 0 : promptTokens - predicted,
      ) ?? null;
    if (ticket !== null && !parsed.stream) ticket.firstToken();
    return {
      kind: "routed",
      endpoint: result.endpoint.address,
      observer: this.#usageObserver(request.requestId, result.endpoint.address, predicted, ticket),
      ...(this.#o.emitEndpointScores ? { endpointScores: scoresOf(result) } : {}),
    };
  }

  /**
   * One line per new model name: which tokenizer it is hashed with. A model that falls back to the default
   * tokenizer while its pods use another one is a classic silent 0 % hit rate.
   */
  #firstSight(model: string): void {
    this.#modelsSeen.add(model);
    this.#log.info(
      { model, tokenizerDir: this.#o.tokenizer.dirFor?.(model) ?? null, hashing: this.#o.hasher !== null },
      "first request for model",
    );
  }

  #routeBodyless(request: RouteRequest): RouteOutcome {
    const candidates = this.#o.endpoints.candidates(request.subsetHint);
    if (candidates.length === 0) {
      const error =
        request.subsetHint === null
          ? new EppError("EPP_INTERNAL", "no pods available in datastore")
          : new EppError("EPP_NO_ENDPOINTS", "failed to find endpoint candidates for serving the request");
      return this.#reject(request, null, error);
    }
    const pick = candidates[randomInt(candidates.length)]!;
    this.#o.metrics.endpointPicks.inc({ endpoint: pick.address });
    this.#log.info(
      {
        "x-request-id": request.requestId,
        method: request.method,
        path: request.path.split("?", 1)[0],
        endpoint: endpointName(pick),
        Address: pick.address,
        schedulingLatencyUs: 0,
      },
      "Request handled",
    );
    return { kind: "routed", endpoint: pick.address };
  }

  #reject(request: RouteRequest, parsed: InferenceRequest | null, err: unknown): RouteOutcome {
    const error =
      err instanceof EppError
        ? err
        : new EppError("EPP_INTERNAL", "internal error while routing", { cause: err });
    const model = parsed?.model ?? "";
    this.#o.metrics.objectiveRequestErrors.inc({
      model_name: model,
      target_model_name: model,
      error_code: error.code,
    });
    const level = error.httpStatus >= 500 ? "warn" : "info";
    this.#log[level](
      {
        "x-request-id": request.requestId,
        model,
        status: error.httpStatus,
        code: error.code,
        reason: error.message,
      },
      "Request rejected",
    );
    return { kind: "rejected", error };
  }

  /** Compares kvpick's prediction with the cached tokens vLLM reports in `usage`. */
  #usageObserver(
    requestId: string,
    address: string,
    predictedTokens: number,
    ticket: DispatchTicket | null,
  ): ResponseObserver {
    const reader = new UsageReader();
    const m = this.#o.metrics;
    return {
      onResponseHeaders: (headers) => reader.setContentType(headers.get("content-type")),
      onResponseBody: (chunk, endOfStream) => {
        if (chunk.length > 0) ticket?.firstToken();
        reader.push(chunk, endOfStream);
      },
      onDone: (outcome) => {
        ticket?.done();
        const usage = reader.usage;
        if (usage === null || usage.cachedTokens === null) return;
        m.predictedCachedTokens.inc(predictedTokens);
        m.actualCachedTokens.inc(usage.cachedTokens);
        if (usage.promptTokens > 0)
          m.cachedTokensError.observe((usage.cachedTokens - predictedTokens) / usage.promptTokens);
        this.#log.debug(
          {
            "x-request-id": requestId,
            Address: address,
            outcome,
            promptTokens: usage.promptTokens,
            predictedCachedTokens: predictedTokens,
            actualCachedTokens: usage.cachedTokens,
          },
          "Response usage",
        );
      },
    };
  }
}

/** promptTextOf's text as a value the estimated keys walk (a string is the text; others stand for JSON). */
function promptValueOf(request: InferenceRequest): unknown {
  if (request.kind === "chat") return request.body.messages ?? [];
  if (request.kind === "completion") return request.body.prompt ?? '""';
  return "";
}

function endpointName(e: Endpoint): string {
  return e.name ?? e.address;
}

function round(v: number | undefined): number | null {
  return v === undefined ? null : Math.round(v * 1e4) / 1e4;
}

function scoresOf(result: Extract<SchedulingResult, { kind: "picked" }>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const s of result.scores) out[s.address] = { total: s.total, ...s.byScorer };
  return out;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
