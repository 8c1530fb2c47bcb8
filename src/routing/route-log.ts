// The request path's log lines, built from the decision record (route-decision.ts): one "Request handled"
// audit line per routed request, "Request rejected" per refusal, never prompt text. Field names and wording
// are an operator contract (GIE's audit line names `Address` and `NamespacedName`): keep them.
import { logField } from "../observability/label-bounds.js";
import type { Logger } from "../observability/logger.js";
import type { Endpoint, EndpointScore } from "../scheduling/types.js";
import type { RouteDecision } from "./route-decision.js";
import type { ResponseUsage } from "./route-recorder.js";

export class RouteLog {
  readonly #log: Logger;

  constructor(logger: Logger) {
    this.#log = logger.child({ component: "director" });
  }

  /** The decision's line: the audit line for a routed request, the refusal for a rejected one. */
  decided(d: RouteDecision): void {
    const v = d.verdict;
    if (v.kind === "routed") {
      const winner = v.scores[0];
      const runnerUp = v.scores[1];
      this.#log.info(
        {
          "x-request-id": d.requestId,
          model: logField(d.model),
          targetModel: logField(d.model),
          endpoint: endpointName(v.endpoint),
          Address: v.endpoint.address,
          ...(v.endpoint.name === null ? {} : { NamespacedName: v.endpoint.name }),
          promptTokens: d.promptTokens,
          prefixMatchBlocks: v.prefixMatchBlocks,
          totalBlocks: v.totalBlocks,
          score: round(winner?.total),
          scores: winner?.byScorer,
          runnerUp: runnerUp?.address ?? null,
          runnerUpScore: round(runnerUp?.total),
          candidates: v.scores.length,
          schedulingLatencyUs: v.schedulingMicros,
        },
        "Request handled",
      );
    } else if (v.kind === "bodyless") {
      this.#log.info(
        {
          "x-request-id": d.requestId,
          method: v.method,
          path: v.path.split("?", 1)[0],
          endpoint: endpointName(v.endpoint),
          Address: v.endpoint.address,
          schedulingLatencyUs: 0,
        },
        "Request handled",
      );
    } else if (v.kind === "rejected") {
      const error = v.error;
      this.#log[error.httpStatus >= 500 ? "warn" : "info"](
        {
          "x-request-id": d.requestId,
          model: logField(d.model),
          status: error.httpStatus,
          code: error.code,
          reason: error.message,
        },
        "Request rejected",
      );
    }
  }

  /**
   * One line per new model name: which tokenizer it is hashed with. A model that falls back to the default
   * tokenizer while its pods use another one is a classic silent 0 % hit rate.
   */
  firstSight(modelField: string, tokenizerDir: string | null, hashing: boolean): void {
    this.#log.info({ model: modelField, tokenizerDir, hashing }, "first request for model");
  }

  tokenizationFailed(requestId: string, model: string, err: unknown): void {
    this.#log.warn(
      {
        "x-request-id": requestId,
        model: logField(model),
        err: err instanceof Error ? err.message : String(err),
      },
      "tokenization failed: routing on load alone",
    );
  }

  servedByFallback(requestId: string, picked: string, served: string): void {
    this.#log.info({ "x-request-id": requestId, picked, served }, "served by a fallback endpoint");
  }

  usage(
    requestId: string,
    address: string,
    outcome: string,
    predictedCachedTokens: number,
    usage: ResponseUsage & { cachedTokens: number },
  ): void {
    this.#log.debug(
      {
        "x-request-id": requestId,
        Address: address,
        outcome,
        promptTokens: usage.promptTokens,
        predictedCachedTokens,
        actualCachedTokens: usage.cachedTokens,
      },
      "Response usage",
    );
  }
}

function endpointName(e: Endpoint): string {
  return e.name ?? e.address;
}

function round(v: number | undefined): number | null {
  return v === undefined ? null : Math.round(v * 1e4) / 1e4;
}

/** Every candidate's scores, for the response metadata (server.emitEndpointScores). */
export function scoresOf(scores: readonly EndpointScore[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const s of scores) out[s.address] = { total: s.total, ...s.byScorer };
  return out;
}
