// GIE's per-request families (`inference_objective_*`, gateway-api-inference-extension v1.5
// pkg/epp/metrics/metrics.go: same names, labels, buckets and help) plus the TTFT/TPOT histograms llm-d's
// scheduler exports under the same subsystem, recorded from what kvpick's response path sees: the request
// body, each response chunk, the `usage` block and the end of the response.
// Callers never see label names: they record intentions (a request, its first token, its end) and the label
// children are created once per (bounded) model.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { RequestRecord, ResponseCompletion } from "../routing/route-recorder.js";
/** Client-chosen model name → bounded label value (label-bounds.ts `ModelLabels` implements it). */
export interface ModelLabeler {
  label(model: string): string;
}

/** One routed request's GIE families (the response path's recorder, less the cached-token comparison). */
export type ObjectiveRecord = Omit<RequestRecord, "cachedTokens">;

// GIE's buckets, verbatim (dashboards and recording rules are written against them).
/** Long-running inference, 5 ms to 1 h (request duration, TTFT). */
const GENERAL_LATENCY = [
  0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60, 120,
  180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600,
];
/** Time per output token, 0.5 ms to 6 min. */
const TPOT = [
  0.0005, 0.00205, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.125, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1,
  1.5, 2, 3, 4.5, 6, 12, 18, 24, 30, 36, 48, 60, 90, 120, 180, 270, 360,
];
/** Request bytes: fine-grained to 64 KB, then powers of two to 1 GB. */
const REQUEST_SIZES = [
  64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288, 1048576, 2097152,
  4194304, 8388608, 16777216, 33554432, 67108864, 134217728, 268435456, 536870912, 1073741824,
];
// 32778 (not 32768) is GIE's own value; kept so `le` labels match GIE's series exactly.
const RESPONSE_SIZES = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32778, 65536];
const INPUT_TOKENS = [
  1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32778, 65536, 131072, 262144, 524288,
  1048576,
];
const OUTPUT_TOKENS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192];
const NTPOT = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0];

const MODEL_LABELS = ["model_name", "target_model_name"] as const;
type ModelLabel = (typeof MODEL_LABELS)[number];

/** The label children of one (model, target) pair, created on first use. */
interface Children {
  duration: Histogram.Internal<ModelLabel>;
  requestSizes: Histogram.Internal<ModelLabel>;
  responseSizes: Histogram.Internal<ModelLabel>;
  inputTokens: Histogram.Internal<ModelLabel>;
  outputTokens: Histogram.Internal<ModelLabel>;
  cachedTokens: Histogram.Internal<ModelLabel>;
  ntpot: Histogram.Internal<ModelLabel>;
  ttft: Histogram.Internal<ModelLabel>;
  tpot: Histogram.Internal<ModelLabel>;
  running: Gauge.Internal<"model_name"> | null;
  model: string;
  target: string;
}

/** GIE's help strings carry the component-base stability level. */
const alpha = (help: string) => `[ALPHA] ${help}`;

export class RequestMetrics {
  readonly #labels: ModelLabeler;
  readonly #children = new Map<string, Children>();
  readonly #totals = new Map<string, Counter.Internal>();
  readonly #requestTotal: Counter<ModelLabel | "priority">;
  readonly #errorTotal: Counter<ModelLabel | "error_code">;
  readonly #duration: Histogram<ModelLabel>;
  readonly #requestSizes: Histogram<ModelLabel>;
  readonly #responseSizes: Histogram<ModelLabel>;
  readonly #inputTokens: Histogram<ModelLabel>;
  readonly #outputTokens: Histogram<ModelLabel>;
  readonly #cachedTokens: Histogram<ModelLabel>;
  readonly #ntpot: Histogram<ModelLabel>;
  readonly #ttft: Histogram<ModelLabel>;
  readonly #tpot: Histogram<ModelLabel>;
  readonly #running: Gauge<"model_name">;

  constructor(registry: Registry, labels: ModelLabeler) {
    this.#labels = labels;
    const registers = [registry];
    const labelNames = MODEL_LABELS;
    const histogram = (name: string, help: string, buckets: number[]) =>
      new Histogram({ name, help: alpha(help), labelNames, buckets, registers });
    this.#requestTotal = new Counter({
      name: "inference_objective_request_total",
      help: alpha("Counter of inference objective requests broken out for each model and target model."),
      labelNames: [...MODEL_LABELS, "priority"],
      registers,
    });
    this.#errorTotal = new Counter({
      name: "inference_objective_request_error_total",
      help: alpha(
        "Counter of inference objective requests errors broken out for each model and target model.",
      ),
      labelNames: [...MODEL_LABELS, "error_code"],
      registers,
    });
    this.#duration = histogram(
      "inference_objective_request_duration_seconds",
      "Inference objective response latency distribution in seconds for each model and target model.",
      GENERAL_LATENCY,
    );
    this.#requestSizes = histogram(
      "inference_objective_request_sizes",
      "Inference objective requests size distribution in bytes for each model and target model.",
      REQUEST_SIZES,
    );
    this.#responseSizes = histogram(
      "inference_objective_response_sizes",
      "Inference objective responses size distribution in bytes for each model and target model.",
      RESPONSE_SIZES,
    );
    this.#inputTokens = histogram(
      "inference_objective_input_tokens",
      "Inference objective input token count distribution for requests in each model.",
      INPUT_TOKENS,
    );
    this.#outputTokens = histogram(
      "inference_objective_output_tokens",
      "Inference objective output token count distribution for requests in each model.",
      OUTPUT_TOKENS,
    );
    this.#cachedTokens = histogram(
      "inference_objective_prompt_cached_tokens",
      "Inference objective prompt cached token count distribution for requests in each model.",
      INPUT_TOKENS,
    );
    this.#ntpot = histogram(
      "inference_objective_normalized_time_per_output_token_seconds",
      "Inference objective latency divided by number of output tokens in seconds for each model and target model.",
      NTPOT,
    );
    this.#ttft = histogram(
      "inference_objective_request_ttft_seconds",
      "Inference model TTFT distribution in seconds for each model and target model.",
      GENERAL_LATENCY,
    );
    this.#tpot = histogram(
      "inference_objective_request_tpot_seconds",
      "Inference model TPOT distribution in seconds for each model and target model.",
      TPOT,
    );
    this.#running = new Gauge({
      name: "inference_objective_running_requests",
      help: alpha("Inference objective number of running requests in each model."),
      labelNames: ["model_name"],
      registers,
    });
  }

  /**
   * A routed request: counts it and its body size, and holds it in the running-requests gauge until its
   * record's `complete` or `aborted`. `priority` is the InferenceObjective priority (GIE's default 0).
   */
  recordRequest(model: string, target: string, requestBytes: number, priority = 0): ObjectiveRecord {
    const c = this.#childrenOf(model, target);
    this.#totalOf(c, priority).inc();
    c.requestSizes.observe(requestBytes);
    c.running?.inc();
    return new Record(c, this.#errorTotal);
  }

  /** A request answered with an error before reaching a pod (`code`: kvpick's error code). */
  recordError(model: string, target: string, code: string): void {
    this.#errorTotal.inc({
      model_name: this.#labels.label(model),
      target_model_name: this.#labels.label(target),
      error_code: code,
    });
  }

  #childrenOf(model: string, target: string): Children {
    const m = this.#labels.label(model);
    const t = target === model ? m : this.#labels.label(target);
    const key = m === t ? m : `${m}\u0000${t}`;
    let c = this.#children.get(key);
    if (c === undefined) {
      const l = { model_name: m, target_model_name: t };
      c = {
        duration: this.#duration.labels(l),
        requestSizes: this.#requestSizes.labels(l),
        responseSizes: this.#responseSizes.labels(l),
        inputTokens: this.#inputTokens.labels(l),
        outputTokens: this.#outputTokens.labels(l),
        cachedTokens: this.#cachedTokens.labels(l),
        ntpot: this.#ntpot.labels(l),
        ttft: this.#ttft.labels(l),
        tpot: this.#tpot.labels(l),
        // GIE keeps no running count for a request without a model name.
        running: m === "" ? null : this.#running.labels({ model_name: m }),
        model: m,
        target: t,
      };
      this.#children.set(key, c);
    }
    return c;
  }

  #totalOf(c: Children, priority: number): Counter.Internal {
    const key = `${c.model}\u0000${c.target}\u0000${priority}`;
    let child = this.#totals.get(key);
    if (child === undefined) {
      child = this.#requestTotal.labels({
        model_name: c.model,
        target_model_name: c.target,
        priority: String(priority),
      });
      this.#totals.set(key, child);
    }
    return child;
  }
}

class Record implements ObjectiveRecord {
  readonly #c: Children;
  readonly #errors: Counter<ModelLabel | "error_code">;
  #finished = false;

  constructor(children: Children, errors: Counter<ModelLabel | "error_code">) {
    this.#c = children;
    this.#errors = errors;
  }

  firstToken(seconds: number): void {
    if (seconds >= 0) this.#c.ttft.observe(seconds);
  }

  responseStatus(status: number): void {
    if (status >= 400)
      this.#errors.inc({
        model_name: this.#c.model,
        target_model_name: this.#c.target,
        error_code: "ModelServerError",
      });
  }

  complete(r: ResponseCompletion): void {
    if (!this.#finish()) return;
    const c = this.#c;
    if (r.seconds > 0) c.duration.observe(r.seconds);
    c.responseSizes.observe(r.responseBytes);
    const u = r.usage;
    if (u === null) return;
    // As GIE: token counts only when positive; cached tokens whenever the server reported them.
    if (u.promptTokens > 0) c.inputTokens.observe(u.promptTokens);
    if (u.completionTokens > 0) {
      c.outputTokens.observe(u.completionTokens);
      if (r.seconds > 0) c.ntpot.observe(r.seconds / u.completionTokens);
      // Decode time per token after the first (llm-d's TPOT); needs a first chunk and a second token.
      if (r.firstTokenSeconds !== null && u.completionTokens > 1 && r.seconds > r.firstTokenSeconds)
        c.tpot.observe((r.seconds - r.firstTokenSeconds) / (u.completionTokens - 1));
    }
    if (u.cachedTokens !== null) c.cachedTokens.observe(u.cachedTokens);
  }

  aborted(): void {
    this.#finish();
  }

  #finish(): boolean {
    if (this.#finished) return false;
    this.#finished = true;
    this.#c.running?.dec();
    return true;
  }
}
