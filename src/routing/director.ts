// The routing decision for one request (implements ext-proc's Router): parse once, tokenize and hash once
// (prompt-chain.ts), read the cache view, schedule, then hand the decision record to its consumers (audit
// log, request metrics, trace). The cache signal is an optimisation: if it cannot be computed for a reason
// that is not the client's fault, the request is still routed, on load alone.
import { randomInt } from "node:crypto";
import type { PrefixLookup } from "../cache-view/prefix-lookup.js";
import type { DispatchTicket } from "../endpoints/dispatch-ledger.js";
import { EppError } from "../errors.js";
import { logField } from "../observability/label-bounds.js";
import type { Logger } from "../observability/logger.js";
import type { EndpointSource, SchedulingRequest, SchedulingResult } from "../scheduling/types.js";
import { offloadedMessages } from "../tokenization/body-summary.js";
import type { LoraAdapters } from "./lora-adapters.js";
import {
  apiKindOf,
  type InferenceRequest,
  inferenceRequestOf,
  parseInferenceRequest,
  promptTextOf,
} from "./openai-request.js";
import { type ChainHasher, type PromptTokenizer, promptChain } from "./prompt-chain.js";
import { chainKeyOf, type MemoEntry, PromptMemo } from "./prompt-memo.js";
import { NO_TRACER, type RequestTrace, type RequestTracer } from "./request-trace.js";
import { newDecision, type RouteDecision, type RouteVerdict, traceDecision } from "./route-decision.js";
import { RouteLog, scoresOf } from "./route-log.js";
import type { RequestRecord, RouteRecorder } from "./route-recorder.js";
import type { ResponseObserver, RouteOutcome, RouteRequest } from "./route-request.js";
import { UsageReader } from "./usage-reader.js";

export type { ChainHasher, PromptTokenizer };

/** The scheduler as routing needs it (scheduling/scheduler.ts implements it). */
export interface RequestScheduler {
  /** `view`: the read model as this request sees it (CacheReader.lookupFor). */
  schedule(request: SchedulingRequest, view?: PrefixLookup): SchedulingResult;
}

/** The read model as routing needs it (cache-view/cache-view.ts `CacheView` implements it). */
export interface CacheReader {
  /** Whether `lookupFor` asks the shared index (index.redis: one round trip per request). */
  readonly shared: boolean;
  /** The one lookup to schedule `chain` with; resolves, never rejects. */
  lookupFor(chain: BigUint64Array): Promise<PrefixLookup>;
  /** The gateway served the request from `address` instead: its blocks move there. */
  servedBy(address: string, chain: BigUint64Array): void;
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

/** The response header (or metadata) naming the endpoint that really served (GIE protocol v1.0). */
const SERVED_HEADER = "x-gateway-destination-endpoint-served";

export interface DirectorOptions {
  tokenizer: PromptTokenizer;
  /** Null when kvpick has no hash configuration: every request is routed on load alone. */
  hasher: ChainHasher | null;
  scheduler: RequestScheduler;
  endpoints: EndpointSource;
  logger: Logger;
  /** What the request path records (observability/route-metrics.ts). */
  recorder: RouteRecorder;
  /** Put every candidate's scores in the response metadata (debugging). */
  emitEndpointScores?: boolean;
  /** The read model (cache-view/); absent = the scheduler's own view, nothing moves on a fallback. */
  cache?: CacheReader | null;
  /** LoRA adapters: their hash key and base tokenizer; absent = every model hashed as a base model. */
  loras?: LoraAdapters;
  /** Dispatch credit (scheduling.dispatchCredit): what kvpick routes counts as load until scraped / prefilled. */
  dispatch?: DispatchRecorder | null;
  /** OpenTelemetry (tracing.enabled); absent = off. */
  tracer?: RequestTracer;
  /** Flow control (flowControl.enabled): admission before scheduling; absent = every request at once. */
  admission?: AdmissionGate | null;
  /** Bytes of recent bodies kept with their parse and chain (tokenizer.requestMemoBytes); 0 or absent = off. */
  requestMemoBytes?: number;
}

type Picked = Extract<SchedulingResult, { kind: "picked" }>;

/** Distinct model names reported once each; client-chosen names, so the memory is bounded. */
const MAX_MODELS_REPORTED = 1000;

/** A routed request, on its way to the response path. */
interface Routed {
  decision: RouteDecision;
  parsed: InferenceRequest;
  chain: BigUint64Array;
  address: string;
  predictedTokens: number;
  admission: { done(): void } | null;
  record: RequestRecord | null;
  trace: RequestTrace;
}

export class Director {
  readonly #o: DirectorOptions;
  readonly #log: RouteLog;
  readonly #modelsSeen = new Set<string>();
  readonly #tracer: RequestTracer;
  readonly #memo: PromptMemo | null;

  constructor(options: DirectorOptions) {
    this.#o = options;
    this.#log = new RouteLog(options.logger);
    this.#tracer = options.tracer ?? NO_TRACER;
    const memoBytes = options.requestMemoBytes ?? 0;
    this.#memo = memoBytes > 0 ? new PromptMemo(memoBytes) : null;
  }

  /** The request memo's size (tests, diagnostics). */
  memoStats(): { entries: number; bytes: number } {
    return { entries: this.#memo?.entries ?? 0, bytes: this.#memo?.bytes ?? 0 };
  }

  async route(request: RouteRequest): Promise<RouteOutcome> {
    const trace = this.#tracer.start(request.headers);
    const d = newDecision(request.requestId, request.body.length);
    // 1. Body-less requests (GET /v1/models …) carry no prompt: any ready pod, at once (as GIE does).
    if (request.body.length === 0) return this.#routeBodyless(request, d, trace);
    const started = performance.now();

    // 2. Parse once (or not at all: the same bytes were parsed recently). Unreadable = the client's fault: 400.
    const kind = apiKindOf(request.path);
    const seen = this.#memo?.find(kind, request.body);
    let parsed = this.#parse(request, d, started, seen);
    if (parsed instanceof Promise) parsed = await parsed;
    if ("error" in parsed) return this.#reject(d, parsed.error, trace);

    // 3. Tokenize and hash once (scorers read the chain through the scheduling cycle).
    const memo = seen ?? this.#memo?.offer(kind, request.body, parsed);
    const chain = await this.#chain(request, parsed, d, memo);
    if (chain instanceof EppError) return this.#reject(d, chain, trace);

    // 4. Flow control (optional): wait for room or be shed; scheduling below then reads the state at release.
    const admission = await this.#admit(request, parsed.model, d);
    if (admission instanceof EppError) return this.#reject(d, admission, trace);

    // 5. The cache view: the scheduler is synchronous, so the shared index (if any) is read here, once.
    const view = await this.#lookup(chain, d);

    // 6. Schedule. A request Envoy gave up on meanwhile stops here: scheduling records speculative entries,
    // prefix heat and estimated keys, and step 8 dispatch credit, all for a request that will never reach the
    // pod. From here to the answer being written nothing awaits, so a cancel cannot slip in between.
    if (request.cancelled?.() ?? request.signal?.aborted) {
      admission?.done(); // its flow-control slot is free again
      this.#decided(d, trace);
      return { kind: "cancelled" };
    }
    const scoreStart = performance.now();
    const result = this.#o.scheduler.schedule(this.#schedulingRequest(request, parsed, chain, d, memo), view);
    const done = performance.now();
    d.stages.push({ stage: "score", startMs: scoreStart, endMs: done });
    if (result.kind !== "picked") {
      admission?.done();
      return this.#reject(d, notPicked(result), trace);
    }

    // 7. The decision, to its consumers: the audit line, the request metrics, the trace.
    const verdict = this.#routedVerdict(result, Math.round((done - started) * 1000));
    d.verdict = verdict;
    const record = this.#decided(d, trace);

    // 8. Dispatch credit and the response path (usage vs prediction, the served endpoint).
    const { endpoint, fallbacks, predictedTokens } = verdict;
    const routed = { decision: d, parsed, chain, address: endpoint.address, predictedTokens, admission };
    return {
      kind: "routed",
      endpoint: endpoint.address,
      ...(fallbacks.length > 0 ? { fallbacks } : {}),
      observer: this.#usageObserver({ ...routed, record, trace }, started),
      ...(this.#o.emitEndpointScores ? { endpointScores: scoresOf(result.scores) } : {}),
    };
  }

  #routedVerdict(result: Picked, schedulingMicros: number): Extract<RouteVerdict, { kind: "routed" }> {
    const hasher = this.#o.hasher;
    return {
      kind: "routed",
      endpoint: result.endpoint,
      fallbacks: result.targets.slice(1).map((e) => e.address),
      prefixMatchBlocks: result.prefixMatchBlocks,
      totalBlocks: result.totalBlocks,
      predictedTokens:
        hasher === null ? 0 : (result.cachedTokens ?? result.prefixMatchBlocks * (hasher.blockSize ?? 0)),
      scores: result.scores,
      schedulingMicros,
    };
  }

  /** The parsed body (its model and parse time in the decision), or what made it unreadable. */
  #parse(
    request: RouteRequest,
    d: RouteDecision,
    started: number,
    seen: MemoEntry | undefined,
  ): InferenceRequest | { error: unknown } | Promise<InferenceRequest | { error: unknown }> {
    if (seen !== undefined) return this.#parsed(d, started, () => seen.parsed);
    // A large body is parsed on a tokenizer worker (the loop would stall on it); a small one here, at once.
    const onWorker = this.#o.tokenizer.parseOnWorker?.(request.body) ?? null;
    if (onWorker !== null) {
      return onWorker.then(
        (summary) => this.#parsed(d, started, () => inferenceRequestOf(request.path, summary)),
        (error: unknown) => ({ error }),
      );
    }
    return this.#parsed(d, started, () => parseInferenceRequest(request.path, request.body));
  }

  #parsed(
    d: RouteDecision,
    started: number,
    parse: () => InferenceRequest,
  ): InferenceRequest | { error: unknown } {
    let parsed: InferenceRequest;
    try {
      parsed = parse();
    } catch (error) {
      return { error };
    }
    d.model = parsed.model;
    d.stages.push({ stage: "parse", startMs: started, endMs: performance.now() });
    this.#firstSight(parsed.model);
    return parsed;
  }

  /** Hands the decision to its consumers; returns the response path's recorder for a routed request. */
  #decided(d: RouteDecision, trace: RequestTrace): RequestRecord | null {
    const record = this.#o.recorder.decided(d);
    this.#log.decided(d);
    // The model is a span attribute once the body parsed (bounded like a label).
    const parsed = d.stages[0]?.stage === "parse";
    traceDecision(trace, d, parsed ? this.#o.recorder.modelLabel(d.model) : null);
    return record;
  }

  /** One line per new model name (client-chosen names: remembered cut to label-bounds' length). */
  #firstSight(model: string): void {
    const field = logField(model);
    if (this.#modelsSeen.has(field) || this.#modelsSeen.size >= MAX_MODELS_REPORTED) return;
    this.#modelsSeen.add(field);
    this.#log.firstSight(field, this.#o.tokenizer.dirFor?.(model) ?? null, this.#o.hasher !== null);
  }

  /** The block chain: the memo's when these bytes were hashed the same way recently, else promptChain's. */
  async #chain(
    request: RouteRequest,
    parsed: InferenceRequest,
    d: RouteDecision,
    memo: MemoEntry | undefined,
  ): Promise<BigUint64Array | EppError> {
    const key = memo === undefined ? null : this.#chainKey(parsed);
    const hit = key === null ? null : memo!.chain?.key === key ? memo!.chain : null;
    if (hit !== null) {
      const now = performance.now();
      d.promptTokens = hit.promptTokens;
      d.promptMemo = "hit";
      // Zero-length stages keep one observation per request in the stage histograms.
      d.stages.push(
        { stage: "tokenize", startMs: now, endMs: now },
        { stage: "hash", startMs: now, endMs: now },
      );
      return hit.chain;
    }
    const chain = await promptChain(
      this.#chainDeps(request.requestId, parsed.model),
      parsed,
      request.body,
      d,
    );
    if (this.#memo === null || chain instanceof EppError || d.missingSignal !== null) return chain;
    if (parsed.kind === "other" || d.promptTokens === null) return chain;
    d.promptMemo = "miss";
    // Kept only when hashed under the key it was looked up with (the block size may be learnt meanwhile).
    if (memo !== undefined && key !== null && this.#chainKey(parsed) === key)
      this.#memo.setChain(memo, key, chain, d.promptTokens);
    return chain;
  }

  /** What a chain of `parsed` depends on beyond its bytes; null when it is not hashed (nothing to keep). */
  #chainKey(parsed: InferenceRequest): string | null {
    const hasher = this.#o.hasher;
    if (hasher === null || hasher.blockSize === null || parsed.kind === "other" || parsed.multimodal)
      return null;
    const lora = this.#o.loras?.resolve(parsed.model) ?? null;
    if (lora !== null && !lora.hashable) return null;
    return chainKeyOf({
      tokenizerModel: lora?.tokenizerModel ?? parsed.model,
      lora: lora?.hashKey ?? null,
      blockSize: hasher.blockSize,
      scheme: hasher.scheme,
      hashSeed: hasher.hashSeed,
    });
  }

  #chainDeps(requestId: string, model: string) {
    return {
      tokenizer: this.#o.tokenizer,
      hasher: this.#o.hasher,
      loras: this.#o.loras,
      onTokenizerError: (err: unknown) => this.#log.tokenizationFailed(requestId, model, err),
    };
  }

  async #admit(
    request: RouteRequest,
    model: string,
    d: RouteDecision,
  ): Promise<{ done(): void } | EppError | null> {
    if (this.#o.admission == null) return null;
    const queuedAt = performance.now();
    const a = await this.#o.admission.admit({
      requestId: request.requestId,
      model,
      headers: request.headers,
      bytes: request.body.length,
      signal: request.signal,
    });
    d.stages.push({ stage: "flow-control", startMs: queuedAt, endMs: performance.now() });
    if (a.kind === "rejected") return a.error;
    d.priority = a.priority; // the objective's, resolved by flow control (bounded: never a raw client value)
    return a;
  }

  async #lookup(chain: BigUint64Array, d: RouteDecision): Promise<PrefixLookup | undefined> {
    const cache = this.#o.cache;
    if (cache == null || !cache.shared || chain.length === 0) return undefined;
    const startMs = performance.now();
    const view = await cache.lookupFor(chain);
    d.stages.push({ stage: "shared-index", startMs, endMs: performance.now() });
    return view;
  }

  #schedulingRequest(
    request: RouteRequest,
    parsed: InferenceRequest,
    chain: BigUint64Array,
    d: RouteDecision,
    memo: MemoEntry | undefined,
  ): SchedulingRequest {
    // The prompt text is built only if an estimated scorer asks for it.
    let text: string | null = null;
    const lora = this.#o.loras?.resolve(parsed.model) ?? null;
    return {
      requestId: request.requestId,
      model: parsed.model,
      targetModel: parsed.model,
      blockHashes: chain,
      headers: request.headers,
      subsetHint: request.subsetHint,
      ...(lora === null || lora.adapter === undefined ? {} : { loraAdapter: lora.adapter }),
      ...(d.promptTokens === null ? {} : { promptTokens: d.promptTokens }),
      promptText: () => {
        text ??= promptTextOf(parsed);
        return text;
      },
      promptValue: () => promptValueOf(parsed),
      cacheSalt: parsed.cacheSalt,
      ...(this.#o.admission == null ? {} : { priority: d.priority }),
      ...(memo === undefined || this.#memo === null ? {} : { bodyDerived: this.#memo.derivedOf(memo) }),
    };
  }

  #routeBodyless(request: RouteRequest, d: RouteDecision, trace: RequestTrace): RouteOutcome {
    const candidates = this.#o.endpoints.candidates(request.subsetHint);
    if (candidates.length === 0) {
      const error =
        request.subsetHint === null
          ? new EppError("EPP_INTERNAL", "no pods available in datastore")
          : new EppError("EPP_NO_ENDPOINTS", "failed to find endpoint candidates for serving the request");
      return this.#reject(d, error, trace);
    }
    const pick = candidates[randomInt(candidates.length)]!;
    d.verdict = { kind: "bodyless", endpoint: pick, method: request.method, path: request.path };
    this.#decided(d, trace);
    return { kind: "routed", endpoint: pick.address };
  }

  #reject(d: RouteDecision, err: unknown, trace: RequestTrace): RouteOutcome {
    const error =
      err instanceof EppError
        ? err
        : new EppError("EPP_INTERNAL", "internal error while routing", { cause: err });
    d.verdict = { kind: "rejected", error };
    this.#decided(d, trace);
    return { kind: "rejected", error };
  }

  /**
   * Dispatch credit, then the response path: compares kvpick's prediction with the cached tokens vLLM
   * reports in `usage`, and follows the served endpoint: when the gateway fell back to another pod of the
   * list, dispatch credit, speculative entries and the usage line move to that pod.
   */
  #usageObserver(r: Routed, started: number): ResponseObserver {
    const { record, trace, decision, parsed, chain } = r;
    const streaming = parsed.stream;
    const promptTokens = decision.promptTokens;
    const prefillTokens = promptTokens === null ? 0 : promptTokens - r.predictedTokens;
    // The uncached part of the prompt is load on the pod until a scrape shows it and, for a streaming
    // response, until its first chunk (a non-streaming one shows nothing before the end).
    const dispatch = (address: string) => {
      const t = this.#o.dispatch?.dispatch(address, prefillTokens) ?? null;
      if (t !== null && !streaming) t.firstToken();
      return t;
    };
    let ticket: DispatchTicket | null = dispatch(r.address);
    let address = r.address;
    const reader = new UsageReader();
    let responseBytes = 0;
    let firstTokenSeconds: number | null = null;
    let status: number | null = null;
    return {
      onResponseHeaders: (headers) => {
        reader.setContentType(headers.get("content-type"));
        status = Number(headers.get(":status") ?? "") || null;
        if (status !== null) record?.responseStatus(status);
        const served = headers.get(SERVED_HEADER)?.trim();
        if (served === undefined || served === "" || served === address) return;
        if (!this.#o.endpoints.candidates([served]).some((e) => e.address === served)) return; // not ours
        this.#log.servedByFallback(decision.requestId, address, served);
        address = served;
        if (ticket !== null) {
          if (ticket.retract !== undefined) ticket.retract();
          else ticket.done();
          ticket = dispatch(served);
        }
        this.#o.cache?.servedBy(served, chain);
      },
      onResponseBody: (chunk, endOfStream) => {
        if (chunk.length > 0) {
          ticket?.firstToken();
          if (streaming && firstTokenSeconds === null) {
            firstTokenSeconds = (performance.now() - started) / 1000;
            record?.firstToken(firstTokenSeconds);
          }
        }
        responseBytes += chunk.length;
        reader.push(chunk, endOfStream);
      },
      onDone: (outcome) => {
        ticket?.done();
        r.admission?.done();
        const usage = reader.usage;
        const seconds = (performance.now() - started) / 1000;
        if (outcome === "complete") record?.complete({ seconds, responseBytes, usage, firstTokenSeconds });
        else record?.aborted();
        trace.set("kvpick.response", outcome);
        if (status !== null) trace.set("http.response.status_code", status);
        if (usage?.cachedTokens != null) trace.set("kvpick.cached_tokens.actual", usage.cachedTokens);
        trace.end(status !== null && status >= 400 ? "ModelServerError" : null);
        if (usage === null || usage.cachedTokens === null) return;
        const reported = { ...usage, cachedTokens: usage.cachedTokens };
        record?.cachedTokens(r.predictedTokens, reported);
        this.#log.usage(decision.requestId, address, outcome, r.predictedTokens, reported);
      },
    };
  }
}

/** A scheduling result without a pick, as the error that ends the request. */
function notPicked(result: Exclude<SchedulingResult, { kind: "picked" }>): EppError {
  if (result.kind === "no-endpoints")
    return new EppError("EPP_NO_ENDPOINTS", "failed to find endpoint candidates for serving the request");
  return new EppError(
    "EPP_OVERLOADED",
    `failed to find target endpoint: every candidate filtered by ${result.filteredBy}`,
  );
}

/** promptTextOf's text as a value the estimated keys walk (a string is the text; others stand for JSON). */
function promptValueOf(request: InferenceRequest): unknown {
  if (request.kind === "chat") return offloadedMessages(request.body)?.text ?? request.body.messages ?? [];
  if (request.kind === "completion") return request.body.prompt ?? '""';
  return "";
}
