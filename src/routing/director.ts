// The routing decision for one request (implements ext-proc's Router): parse once, tokenize once, hash
// once, schedule, then audit. The cache signal is an optimisation: if it cannot be computed for a reason
// that is not the client's fault, the request is still routed, on load alone.
import { randomInt } from "node:crypto";
import { EppError } from "../errors.js";
import type { DispatchTicket } from "../endpoints/dispatch-ledger.js";
import type { ResponseObserver, RouteOutcome, RouteRequest, Router } from "../ext-proc/router.js";
import type { BlockExtras, BlockHasher } from "../kv-index/block-hash.js";
import { logField } from "../observability/label-bounds.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { RequestRecord } from "../observability/request-metrics.js";
import type { Endpoint, EndpointSource, PrefixLookup, SchedulingResult } from "../scheduling/types.js";
import type { LoraAdapters } from "./lora-adapters.js";
import { type InferenceRequest, parseInferenceRequest, promptTextOf } from "./openai-request.js";
import { NO_TRACER, type RequestTrace, type RequestTracer } from "./request-trace.js";
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

/** The request hasher as routing needs it (kv-index/request-key-scheme.ts `RequestHasher` implements it). */
export interface ChainHasher {
  /** Tokens per block; null while kvpick has not learnt it from the pods (requests are routed on load alone). */
  readonly blockSize: number | null;
  /** The key scheme and seed, so a tokenizer worker can hash what it renders exactly as `hash` would. */
  readonly scheme: BlockHasher["scheme"];
  readonly hashSeed: string;
  /** vLLM's values of every full block of `tokens`. */
  hash(tokens: ArrayLike<number>, extras?: BlockExtras): BigUint64Array;
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

/** Flow control as routing needs it (flow-control/flow-controller.ts implements it). */
export interface AdmissionGate {
  /** Resolves when the request may be scheduled, or with the error that ends it (429/503). Never rejects. */
  admit(request: {
    requestId: string;
    model: string;
    headers: ReadonlyMap<string, string>;
    bytes: number;
    signal?: AbortSignal | undefined;
  }): Promise<{ kind: "admitted"; priority: number; done(): void } | { kind: "rejected"; error: EppError }>;
}

/** Speculative prefix entries, to move a request's blocks to the pod that really served it. */
export interface SpeculativeRecorder {
  hasPod(podId: string): boolean;
  record(podId: string, chain: BigUint64Array): void;
}

/** The response header (or metadata) naming the endpoint that really served (GIE protocol v1.0). */
const SERVED_HEADER = "x-gateway-destination-endpoint-served";

export interface DirectorOptions {
  tokenizer: PromptTokenizer;
  /** Null when kvpick has no hash configuration: every request is routed on load alone. */
  hasher: ChainHasher | null;
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
  /** OpenTelemetry (tracing.enabled); absent = off. */
  tracer?: RequestTracer;
  /** Flow control (flowControl.enabled): admission before scheduling; absent = every request at once. */
  admission?: AdmissionGate | null;
  /** Speculative entries, re-recorded on the served pod when the gateway fell back to another one. */
  speculative?: SpeculativeRecorder | null;
}

const EMPTY_CHAIN = new BigUint64Array(0);

/** Distinct model names reported once each; client-chosen names, so the memory is bounded. */
const MAX_MODELS_REPORTED = 1000;

export class Director implements Router {
  readonly #o: DirectorOptions;
  readonly #log: Logger;
  readonly #modelsSeen = new Set<string>();
  readonly #tracer: RequestTracer;

  constructor(options: DirectorOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: "director" });
    this.#tracer = options.tracer ?? NO_TRACER;
  }

  async route(request: RouteRequest): Promise<RouteOutcome> {
    const trace = this.#tracer.start(request.headers);
    // 1. Body-less requests (GET /v1/models …) carry no prompt: any ready pod, at once (as GIE does).
    if (request.body.length === 0) return this.#routeBodyless(request, trace);
    const started = performance.now();
    const m = this.#o.metrics;

    // 2. Parse once. A body kvpick cannot read is the client's fault: 400.
    let parsed: InferenceRequest;
    try {
      parsed = parseInferenceRequest(request.path, request.body);
    } catch (err) {
      return this.#reject(request, null, err, trace);
    }
    const parsedAt = performance.now();
    m.stageSeconds.observe({ stage: "parse" }, (parsedAt - started) / 1000);
    trace.stage("parse", started, parsedAt);
    trace.set("gen_ai.request.model", m.modelLabels.label(parsed.model));
    // Client-chosen names: remembered and logged cut to label-bounds' length (a 1 MB name stays 256 chars).
    const modelField = logField(parsed.model);
    if (!this.#modelsSeen.has(modelField) && this.#modelsSeen.size < MAX_MODELS_REPORTED)
      this.#firstSight(parsed.model, modelField);

    // 3. Tokenize and hash once (scorers read the chain through the scheduling cycle). A LoRA adapter is
    // tokenized as its base model and hashed with its key, as vLLM does.
    let chain: BigUint64Array = EMPTY_CHAIN;
    let promptTokens: number | null = null;
    const lora = this.#o.loras?.resolve(parsed.model) ?? null;
    if (parsed.multimodal) {
      m.cacheSignalMissing.inc({ reason: "multimodal" }); // routed on load, no prefix credit (openai-request.ts)
    } else if (lora !== null && !lora.hashable && parsed.kind !== "other") {
      m.cacheSignalMissing.inc({ reason: "lora-id-unknown" });
    } else if (parsed.kind !== "other" && this.#o.hasher !== null) {
      const endpoint = parsed.kind === "chat" ? "/v1/chat/completions" : "/v1/completions";
      try {
        const model = lora?.tokenizerModel ?? parsed.model;
        const hasher = this.#o.hasher;
        const extras = { cacheSalt: parsed.cacheSalt, lora: lora?.hashKey ?? null };
        // The worker hashes what it renders when the block size is known (learnt or configured).
        const blockSize = hasher.blockSize;
        const { tokenIds, blockHashes } = await this.#o.tokenizer.tokenize(
          model,
          endpoint,
          parsed.body,
          request.body,
          blockSize === null
            ? undefined
            : { hasher: { scheme: hasher.scheme, hashSeed: hasher.hashSeed, blockSize }, extras },
        );
        promptTokens = tokenIds.length;
        const tokenizedAt = performance.now();
        m.stageSeconds.observe({ stage: "tokenize" }, (tokenizedAt - parsedAt) / 1000);
        trace.stage("tokenize", parsedAt, tokenizedAt);
        if (blockHashes === undefined && hasher.blockSize === null) {
          // No pod has told its block size yet (tokenizer.blockSize unset): the prompt still counts as load.
          m.cacheSignalMissing.inc({ reason: "block-size-unknown" });
        } else {
          // Hashed already where a long conversation was rendered (a worker), else here.
          chain = blockHashes ?? hasher.hash(tokenIds, extras);
          const hashedAt = performance.now();
          m.stageSeconds.observe({ stage: "hash" }, (hashedAt - tokenizedAt) / 1000);
          trace.stage("hash", tokenizedAt, hashedAt);
        }
      } catch (err) {
        // The client's fault (400, or 413 for a conversation beyond tokenizer.maxChatMessages): rejected.
        if (err instanceof EppError && err.httpStatus < 500) return this.#reject(request, parsed, err, trace);
        // Not the client's fault (tokenizer files missing, template bug): route without the cache signal.
        m.cacheSignalMissing.inc({ reason: err instanceof EppError ? err.code : "internal" });
        this.#log.warn(
          { "x-request-id": request.requestId, model: logField(parsed.model), err: errorText(err) },
          "tokenization failed: routing on load alone",
        );
      }
    } else if (parsed.kind !== "other") {
      m.cacheSignalMissing.inc({ reason: "no-hash-config" });
    }

    // 4. Flow control (optional): wait for room or be shed; scheduling below then reads the state at release.
    let admission: { done(): void; priority: number } | null = null;
    if (this.#o.admission != null) {
      const queuedAt = performance.now();
      const a = await this.#o.admission.admit({
        requestId: request.requestId,
        model: parsed.model,
        headers: request.headers,
        bytes: request.body.length,
        signal: request.signal,
      });
      m.stageSeconds.observe({ stage: "flow-control" }, (performance.now() - queuedAt) / 1000);
      if (a.kind === "rejected") return this.#reject(request, parsed, a.error, trace);
      admission = a;
    }

    // 5. Shared index (optional): the scheduler is synchronous, so Redis is read here, once per request.
    let prefixLookup: PrefixLookup | undefined;
    const shared = this.#o.sharedIndex;
    if (shared != null && chain.length > 0) {
      const lookupStart = performance.now();
      prefixLookup = await shared.lookupFor(chain);
      const lookedUpAt = performance.now();
      m.stageSeconds.observe({ stage: "shared-index" }, (lookedUpAt - lookupStart) / 1000);
      trace.stage("prefix-lookup", lookupStart, lookedUpAt);
    }

    // 6. Schedule. The prompt text is built only if an estimated scorer asks for it. A request Envoy gave up
    // on meanwhile stops here: scheduling records speculative entries, prefix heat and estimated keys, and
    // step 7 dispatch credit, all for a request that will never reach the pod. From here to the answer
    // being written nothing awaits, so a cancel cannot slip in between.
    if (request.signal?.aborted) {
      admission?.done(); // its flow-control slot is free again
      return { kind: "cancelled" };
    }
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
    trace.stage("schedule", scoreStart, done);
    if (result.kind !== "picked") admission?.done();
    if (result.kind === "no-endpoints") {
      return this.#reject(
        request,
        parsed,
        new EppError("EPP_NO_ENDPOINTS", "failed to find endpoint candidates for serving the request"),
        trace,
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
        trace,
      );
    }

    // 7. Record and audit. One info line per routed request, no prompt text.
    const schedulingMicros = Math.round((done - started) * 1000);
    m.schedulingSeconds.observe(schedulingMicros / 1e6);
    const priority = admission?.priority ?? 0; // the objective's, resolved by flow control (bounded)
    const record = m.objective.recordRequest(parsed.model, parsed.model, request.body.length, priority);
    m.endpointPicks.inc({ endpoint: result.endpoint.address });
    m.prefixHitBlocks.observe(result.prefixMatchBlocks);
    if (result.totalBlocks > 0) m.prefixHitRatio.observe(result.prefixMatchBlocks / result.totalBlocks);
    const winner = result.scores[0];
    const runnerUp = result.scores[1];
    this.#log.info(
      {
        "x-request-id": request.requestId,
        model: logField(parsed.model),
        targetModel: logField(parsed.model),
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
        : (result.cachedTokens ?? result.prefixMatchBlocks * (this.#o.hasher.blockSize ?? 0));
    // 8. Dispatch credit: the uncached part of the prompt is load on the pod until a scrape shows it and, for
    // a streaming response, until its first chunk (a non-streaming one shows nothing before the end).
    const ticket =
      this.#o.dispatch?.dispatch(
        result.endpoint.address,
        promptTokens === null ? 0 : promptTokens - predicted,
      ) ?? null;
    if (ticket !== null && !parsed.stream) ticket.firstToken();
    trace.set("kvpick.endpoint", result.endpoint.address);
    trace.set("kvpick.prefix_blocks.matched", result.prefixMatchBlocks);
    trace.set("kvpick.prefix_blocks.total", result.totalBlocks);
    trace.set("kvpick.cached_tokens.predicted", predicted);
    if (promptTokens !== null) trace.set("kvpick.prompt_tokens", promptTokens);
    const fallbacks = result.targets.slice(1).map((e) => e.address);
    return {
      kind: "routed",
      endpoint: result.endpoint.address,
      ...(fallbacks.length > 0 ? { fallbacks } : {}),
      observer: this.#usageObserver({
        requestId: request.requestId,
        address: result.endpoint.address,
        predictedTokens: predicted,
        prefillTokens: promptTokens === null ? 0 : promptTokens - predicted,
        streaming: parsed.stream,
        chain,
        ticket,
        admission,
        record,
        trace,
        started,
      }),
      ...(this.#o.emitEndpointScores ? { endpointScores: scoresOf(result) } : {}),
    };
  }

  /**
   * One line per new model name: which tokenizer it is hashed with. A model that falls back to the default
   * tokenizer while its pods use another one is a classic silent 0 % hit rate.
   */
  #firstSight(model: string, field: string): void {
    this.#modelsSeen.add(field);
    this.#log.info(
      {
        model: field,
        tokenizerDir: this.#o.tokenizer.dirFor?.(model) ?? null,
        hashing: this.#o.hasher !== null,
      },
      "first request for model",
    );
  }

  #routeBodyless(request: RouteRequest, trace: RequestTrace): RouteOutcome {
    const candidates = this.#o.endpoints.candidates(request.subsetHint);
    if (candidates.length === 0) {
      const error =
        request.subsetHint === null
          ? new EppError("EPP_INTERNAL", "no pods available in datastore")
          : new EppError("EPP_NO_ENDPOINTS", "failed to find endpoint candidates for serving the request");
      return this.#reject(request, null, error, trace);
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
    trace.set("kvpick.endpoint", pick.address);
    trace.end();
    return { kind: "routed", endpoint: pick.address };
  }

  #reject(
    request: RouteRequest,
    parsed: InferenceRequest | null,
    err: unknown,
    trace: RequestTrace,
  ): RouteOutcome {
    const error =
      err instanceof EppError
        ? err
        : new EppError("EPP_INTERNAL", "internal error while routing", { cause: err });
    const model = parsed?.model ?? "";
    const modelField = logField(model);
    this.#o.metrics.objective.recordError(model, model, error.code);
    trace.end(error.code);
    const level = error.httpStatus >= 500 ? "warn" : "info";
    this.#log[level](
      {
        "x-request-id": request.requestId,
        model: modelField,
        status: error.httpStatus,
        code: error.code,
        reason: error.message,
      },
      "Request rejected",
    );
    return { kind: "rejected", error };
  }

  /**
   * Compares kvpick's prediction with the cached tokens vLLM reports in `usage`, and follows the served
   * endpoint: when the gateway fell back to another pod of the list, dispatch credit, speculative entries and
   * the usage line move to that pod.
   */
  #usageObserver(r: {
    requestId: string;
    address: string;
    predictedTokens: number;
    prefillTokens: number;
    streaming: boolean;
    chain: BigUint64Array;
    ticket: DispatchTicket | null;
    admission: { done(): void } | null;
    record: RequestRecord;
    trace: RequestTrace;
    started: number;
  }): ResponseObserver {
    const reader = new UsageReader();
    const m = this.#o.metrics;
    const { record, trace, started } = r;
    let { address, ticket } = r;
    let responseBytes = 0;
    let firstTokenSeconds: number | null = null;
    let status: number | null = null;
    return {
      onResponseHeaders: (headers) => {
        reader.setContentType(headers.get("content-type"));
        status = Number(headers.get(":status") ?? "") || null;
        if (status !== null) record.responseStatus(status);
        const served = headers.get(SERVED_HEADER)?.trim();
        if (served === undefined || served === "" || served === address) return;
        if (!this.#o.endpoints.candidates([served]).some((e) => e.address === served)) return; // not ours
        this.#log.info(
          { "x-request-id": r.requestId, picked: address, served },
          "served by a fallback endpoint",
        );
        address = served;
        if (ticket !== null) {
          if (ticket.retract !== undefined) ticket.retract();
          else ticket.done();
          ticket = this.#o.dispatch?.dispatch(served, r.prefillTokens) ?? null;
          if (ticket !== null && !r.streaming) ticket.firstToken();
        }
        const spec = this.#o.speculative;
        if (spec != null && r.chain.length > 0) {
          const ip = served.startsWith("[") ? served.slice(1, served.indexOf("]")) : served.split(":")[0]!;
          const id = spec.hasPod(served) ? served : spec.hasPod(ip) ? ip : null;
          if (id !== null) spec.record(id, r.chain);
        }
      },
      onResponseBody: (chunk, endOfStream) => {
        if (chunk.length > 0) {
          ticket?.firstToken();
          if (r.streaming && firstTokenSeconds === null) {
            firstTokenSeconds = (performance.now() - started) / 1000;
            record.firstToken(firstTokenSeconds);
          }
        }
        responseBytes += chunk.length;
        reader.push(chunk, endOfStream);
      },
      onDone: (outcome) => {
        ticket?.done();
        r.admission?.done();
        const usage = reader.usage;
        if (outcome === "complete")
          record.complete({
            seconds: (performance.now() - started) / 1000,
            responseBytes,
            usage,
            firstTokenSeconds,
          });
        else record.aborted();
        trace.set("kvpick.response", outcome);
        if (status !== null) trace.set("http.response.status_code", status);
        if (usage?.cachedTokens != null) trace.set("kvpick.cached_tokens.actual", usage.cachedTokens);
        trace.end(status !== null && status >= 400 ? "ModelServerError" : null);
        if (usage === null || usage.cachedTokens === null) return;
        m.predictedCachedTokens.inc(r.predictedTokens);
        m.actualCachedTokens.inc(usage.cachedTokens);
        if (usage.promptTokens > 0)
          m.cachedTokensError.observe((usage.cachedTokens - r.predictedTokens) / usage.promptTokens);
        this.#log.debug(
          {
            "x-request-id": r.requestId,
            Address: address,
            outcome,
            promptTokens: usage.promptTokens,
            predictedCachedTokens: r.predictedTokens,
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
