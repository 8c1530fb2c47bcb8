// What the request path records, declared here by its consumer and implemented in observability/
// (route-metrics.ts, request-metrics.ts). Intentions, not label names: callers never see a metric.
import type { RouteDecision } from "./route-decision.js";

/** What vLLM reported in `usage` (usage-reader.ts reads it). */
export interface ResponseUsage {
  promptTokens: number;
  completionTokens: number;
  /** `prompt_tokens_details.cached_tokens`, null when the server omits it. */
  cachedTokens: number | null;
}

/** The end of one routed request, as the response path measured it. */
export interface ResponseCompletion {
  /** From the routing call's start to the response's end of stream. */
  seconds: number;
  /** Response body bytes passed through. */
  responseBytes: number;
  usage: ResponseUsage | null;
  /** Seconds to the first response body chunk of a streamed (SSE) response; null when not streamed. */
  firstTokenSeconds: number | null;
}

/** One routed request's recorder: `complete` or `aborted` is called once, the others at most once. */
export interface RequestRecord {
  /** The first body chunk of a streamed response arrived (TTFT). */
  firstToken(seconds: number): void;
  /** The model server answered with this HTTP status; ≥ 400 counts as `ModelServerError` (as GIE intends). */
  responseStatus(status: number): void;
  complete(c: ResponseCompletion): void;
  /** The stream ended before the response did: only the running-requests gauge moves. */
  aborted(): void;
  /** vLLM reported `cachedTokens` of `promptTokens` cached where kvpick predicted `predictedTokens`. */
  cachedTokens(predictedTokens: number, usage: ResponseUsage & { cachedTokens: number }): void;
}

export interface RouteRecorder {
  /** A client-chosen model name as a bounded value (label-bounds.ts), for traces. */
  modelLabel(model: string): string;
  /**
   * One decision, whatever it came to: stage latencies, a missing cache signal, the pick or the error.
   * Returns the response path's recorder for a request routed with a body, else null.
   */
  decided(decision: RouteDecision): RequestRecord | null;
}
