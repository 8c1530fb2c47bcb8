// One request's routing decision as a record (undici's diagnostics channels as the model): the director
// fills it in as the steps run and hands it, once, to its consumers — the audit log (route-log.ts), the
// request metrics (RouteRecorder, implemented in observability/) and the trace attributes (traceDecision).
// The director itself makes no metric call and builds no log line.
import type { EppError } from "../errors.js";
import type { Endpoint, EndpointScore } from "../scheduling/types.js";
import type { RequestTrace } from "./request-trace.js";

/** The timed steps of a routing decision (bounded: they become label values). */
export type RouteStage = "parse" | "tokenize" | "hash" | "flow-control" | "shared-index" | "score";

/** Why a request is routed on load alone, without its block chain (bounded: reasons or kvpick error codes). */
export type MissingSignal =
  | "multimodal"
  | "lora-id-unknown"
  | "block-size-unknown"
  | "no-hash-config"
  | "internal"
  | EppError["code"];

export interface StageTiming {
  readonly stage: RouteStage;
  /** `performance.now()` milliseconds. */
  readonly startMs: number;
  readonly endMs: number;
}

/** What the decision came to. */
export type RouteVerdict =
  | {
      readonly kind: "routed";
      readonly endpoint: Endpoint;
      /** Addresses after `endpoint`, for gateways that retry down the list. */
      readonly fallbacks: readonly string[];
      readonly prefixMatchBlocks: number;
      readonly totalBlocks: number;
      /** Prompt tokens expected cached on `endpoint` (0 without a hash configuration). */
      readonly predictedTokens: number;
      /** Every scored candidate, the picked one first. */
      readonly scores: readonly EndpointScore[];
      /** Last body byte in to the decision. */
      readonly schedulingMicros: number;
    }
  /** A body-less request (GET /v1/models …): any ready pod, at once. */
  | { readonly kind: "bodyless"; readonly endpoint: Endpoint; readonly method: string; readonly path: string }
  | { readonly kind: "rejected"; readonly error: EppError }
  /** Envoy gave up before the decision: nothing recorded but the stage timings. */
  | { readonly kind: "cancelled" };

export interface RouteDecision {
  readonly requestId: string;
  /** The model the client named ("" for a body-less request or a body kvpick could not parse). */
  model: string;
  /** Request body bytes. */
  readonly requestBytes: number;
  /** Prompt tokens, null when the prompt was not tokenized. */
  promptTokens: number | null;
  /** Set when the request is routed on load alone for a reason that is not the client's fault. */
  missingSignal: MissingSignal | null;
  /** The objective's priority as flow control resolved it; 0 without flow control. */
  priority: number;
  /**
   * The request memo (tokenizer.requestMemoBytes): "hit" = the same bytes were hashed recently, so parse,
   * render, tokenize and hash were skipped; "miss" = the prompt was hashed; null = memo off or no chain.
   */
  promptMemo: "hit" | "miss" | null;
  /** The steps that ran, in order. */
  readonly stages: StageTiming[];
  verdict: RouteVerdict;
}

export function newDecision(requestId: string, requestBytes: number): RouteDecision {
  return {
    requestId,
    model: "",
    requestBytes,
    promptTokens: null,
    missingSignal: null,
    promptMemo: null,
    priority: 0,
    stages: [],
    verdict: { kind: "cancelled" },
  };
}

/** The trace's span names for the stages (flow-control waits are not spans). */
const SPAN_OF: Readonly<Record<RouteStage, string | null>> = {
  parse: "parse",
  tokenize: "tokenize",
  hash: "hash",
  "flow-control": null,
  "shared-index": "prefix-lookup",
  score: "schedule",
};

/** The decision as trace spans and attributes (ids, bounded names, counts; never prompt text). */
export function traceDecision(trace: RequestTrace, d: RouteDecision, modelLabel: string | null): void {
  for (const s of d.stages) {
    const span = SPAN_OF[s.stage];
    if (span !== null) trace.stage(span, s.startMs, s.endMs);
  }
  if (modelLabel !== null) trace.set("gen_ai.request.model", modelLabel);
  const v = d.verdict;
  if (v.kind === "routed") {
    trace.set("kvpick.endpoint", v.endpoint.address);
    trace.set("kvpick.prefix_blocks.matched", v.prefixMatchBlocks);
    trace.set("kvpick.prefix_blocks.total", v.totalBlocks);
    trace.set("kvpick.cached_tokens.predicted", v.predictedTokens);
    if (d.promptTokens !== null) trace.set("kvpick.prompt_tokens", d.promptTokens);
  } else if (v.kind === "bodyless") {
    trace.set("kvpick.endpoint", v.endpoint.address);
    trace.end();
  } else if (v.kind === "rejected") {
    trace.end(v.error.code);
  }
}
