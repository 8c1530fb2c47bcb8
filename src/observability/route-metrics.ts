// The request path's metrics (routing/route-recorder.ts declares what it records): one decision record in,
// the families GIE/llm-d users expect out. Label children of bounded label sets (stages, reasons) are
// created once here, never looked up per request.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { RouteDecision, RouteStage } from "../routing/route-decision.js";
import type { RequestRecord, RouteRecorder } from "../routing/route-recorder.js";
import type { ModelLabels } from "./label-bounds.js";
import { STAGE_BUCKETS } from "./stage-buckets.js";
import { RequestMetrics } from "./request-metrics.js";

const STAGES: readonly RouteStage[] = ["parse", "tokenize", "hash", "flow-control", "shared-index", "score"];

export class RouteMetrics implements RouteRecorder {
  readonly #labels: ModelLabels;
  /** GIE's `inference_objective_*` per-request families. */
  readonly #objective: RequestMetrics;
  readonly #schedulingSeconds: Histogram;
  readonly #stages: ReadonlyMap<RouteStage, Histogram.Internal<"stage">>;
  readonly #prefixHitBlocks: Histogram;
  readonly #prefixHitRatio: Histogram;
  readonly #predictedCachedTokens: Counter;
  readonly #actualCachedTokens: Counter;
  readonly #cachedTokensError: Histogram;
  readonly #endpointPicks: Counter<"endpoint">;
  readonly #cacheSignalMissing: Counter<"reason">;
  /** `epp_request_memo_lookups_total` by result. */
  readonly #memo: { readonly hit: Counter.Internal; readonly miss: Counter.Internal };
  /** Children of `#cacheSignalMissing`, one per reason seen (reasons and error codes: a bounded set). */
  readonly #missing = new Map<string, Counter.Internal>();

  /** Registers on `metrics.registry`; model names bounded by `metrics.modelLabels`. */
  constructor(metrics: { readonly registry: Registry; readonly modelLabels: ModelLabels }) {
    const { registry, modelLabels: labels } = metrics;
    const registers = [registry];
    this.#labels = labels;
    this.#objective = new RequestMetrics(registry, labels);
    this.#schedulingSeconds = new Histogram({
      name: "epp_scheduling_duration_seconds",
      help: "EPP overhead per request: last body byte in to routing decision (parse, tokenize, hash, score).",
      buckets: STAGE_BUCKETS,
      registers,
    });
    const stageSeconds = new Histogram({
      name: "epp_request_stage_duration_seconds",
      help: "Per-stage latency of the routing decision (stage = parse | tokenize | hash | shared-index | score).",
      labelNames: ["stage"],
      buckets: STAGE_BUCKETS,
      registers,
    });
    // prom-client adds a child's series on its first observation, so a stage that never ran exports none.
    this.#stages = new Map(STAGES.map((stage) => [stage, stageSeconds.labels({ stage })]));
    this.#prefixHitBlocks = new Histogram({
      name: "epp_prefix_hit_blocks",
      help: "Cached prefix blocks on the chosen endpoint, per request.",
      // Powers of two up to 1024 blocks (64k tokens at block size 64).
      buckets: [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      registers,
    });
    this.#prefixHitRatio = new Histogram({
      name: "epp_prefix_hit_ratio",
      help: "Cached prefix blocks on the chosen endpoint / request blocks, per request with at least one block.",
      buckets: [0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1],
      registers,
    });
    this.#predictedCachedTokens = new Counter({
      name: "epp_predicted_cached_tokens_total",
      help: "Prompt tokens kvpick expected the chosen pod to have cached (prefix blocks × block size).",
      registers,
    });
    this.#actualCachedTokens = new Counter({
      name: "epp_actual_cached_tokens_total",
      help: "Prompt tokens the pod reported as cached (usage.prompt_tokens_details.cached_tokens).",
      registers,
    });
    this.#cachedTokensError = new Histogram({
      name: "epp_cached_tokens_prediction_error_ratio",
      help: "(actual − predicted cached tokens) / prompt tokens, per request whose usage reported cached tokens.",
      buckets: [-1, -0.5, -0.25, -0.1, -0.01, 0, 0.01, 0.1, 0.25, 0.5, 1],
      registers,
    });
    this.#endpointPicks = new Counter({
      name: "epp_endpoint_picks_total",
      help: "Requests routed to each endpoint.",
      labelNames: ["endpoint"],
      registers,
    });
    const memo = new Counter({
      name: "epp_request_memo_lookups_total",
      help: "Hashed prompts by whether the request memo had the same body's chain (hit: parse, render, tokenize and hash skipped).",
      labelNames: ["result"],
      registers,
    });
    this.#memo = { hit: memo.labels({ result: "hit" }), miss: memo.labels({ result: "miss" }) };
    this.#cacheSignalMissing = new Counter({
      name: "epp_cache_signal_missing_total",
      help: "Requests routed on load alone because no block hashes could be computed, by reason.",
      labelNames: ["reason"],
      registers,
    });
  }

  modelLabel(model: string): string {
    return this.#labels.label(model);
  }

  decided(d: RouteDecision): RequestRecord | null {
    for (const s of d.stages) this.#stages.get(s.stage)?.observe((s.endMs - s.startMs) / 1000);
    if (d.missingSignal !== null) this.#missingOf(d.missingSignal).inc();
    if (d.promptMemo !== null) this.#memo[d.promptMemo].inc();
    const v = d.verdict;
    switch (v.kind) {
      case "bodyless":
        this.#endpointPicks.inc({ endpoint: v.endpoint.address });
        return null;
      case "rejected":
        this.#objective.recordError(d.model, d.model, v.error.code);
        return null;
      case "cancelled":
        return null;
    }
    this.#schedulingSeconds.observe(v.schedulingMicros / 1e6);
    const record = this.#objective.recordRequest(d.model, d.model, d.requestBytes, d.priority);
    this.#endpointPicks.inc({ endpoint: v.endpoint.address });
    this.#prefixHitBlocks.observe(v.prefixMatchBlocks);
    if (v.totalBlocks > 0) this.#prefixHitRatio.observe(v.prefixMatchBlocks / v.totalBlocks);
    return {
      firstToken: (s) => record.firstToken(s),
      responseStatus: (s) => record.responseStatus(s),
      complete: (c) => record.complete(c),
      aborted: () => record.aborted(),
      cachedTokens: (predicted, usage) => {
        this.#predictedCachedTokens.inc(predicted);
        this.#actualCachedTokens.inc(usage.cachedTokens);
        if (usage.promptTokens > 0)
          this.#cachedTokensError.observe((usage.cachedTokens - predicted) / usage.promptTokens);
      },
    };
  }

  #missingOf(reason: string): Counter.Internal {
    let child = this.#missing.get(reason);
    if (child === undefined) {
      child = this.#cacheSignalMissing.labels({ reason });
      this.#missing.set(reason, child);
    }
    return child;
  }
}

/** The request memo's size (tokenizer.requestMemoBytes), read at scrape time. */
export function watchRequestMemo(
  registry: Registry,
  source: { memoStats(): { entries: number; bytes: number } },
): void {
  const registers = [registry];
  new Gauge({
    name: "epp_request_memo_bytes",
    help: "Bytes the request memo accounts for (bodies with their parse and chain; bounded by tokenizer.requestMemoBytes).",
    registers,
    collect() {
      this.set(source.memoStats().bytes);
    },
  });
  new Gauge({
    name: "epp_request_memo_entries",
    help: "Request bodies the memo holds.",
    registers,
    collect() {
      this.set(source.memoStats().entries);
    },
  });
}
