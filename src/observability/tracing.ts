// OpenTelemetry tracing of the request path: one SERVER span per ext_proc request (`gateway.request`, GIE's
// name), joined to the caller's trace through the W3C `traceparent` request header, with one child span per
// routing stage. Exported over OTLP/HTTP (JSON) in batches, off the request path.
// Off (the default) it is a constant no-op object: the request path pays a few empty calls and allocates
// nothing. The contracts it satisfies are declared by their consumer (routing/request-trace.ts).
import {
  type Context,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { parseKeyPairsIntoRecord, W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  type Sampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import type { Service } from "../service-group.js";
import type { Logger } from "./logger.js";

/** Span attribute values kvpick sets: ids, bounded names, counts. Never prompt text. */
export type TraceValue = string | number | boolean;

/** One request's trace (routing/request-trace.ts declares the same shape). */
export interface RequestTraceImpl {
  /** A finished child span; times are `performance.now()` milliseconds. */
  stage(name: string, startMs: number, endMs: number): void;
  set(key: string, value: TraceValue): void;
  /** Ends the request span; an error code marks it failed (`error.type`). Later calls are ignored. */
  end(errorCode?: string | null): void;
}

export interface RequestTracerImpl {
  /** `headers`: the request's headers (lower-case names); `traceparent`/`tracestate` join the caller's trace. */
  start(headers: ReadonlyMap<string, string>): RequestTraceImpl;
}

export interface Tracing extends Service {
  readonly tracer: RequestTracerImpl;
  /** Nothing to start: the exporter runs from creation. */
  start(): undefined;
  /** Flushes buffered spans (bounded by the exporter's timeout, not by `graceMs`) and stops exporting. */
  stop(graceMs?: number): Promise<void>;
}

const NOOP_TRACE: RequestTraceImpl = {
  stage() {},
  set() {},
  end() {},
};
const NOOP_TRACER: RequestTracerImpl = { start: () => NOOP_TRACE };

/** Tracing off: every call is a no-op on shared constants. */
export const NO_TRACING: Tracing = {
  name: "tracing",
  tracer: NOOP_TRACER,
  start: () => undefined,
  stop: async () => {},
};

/** Child span names: stable, so trace queries and dashboards can rely on them. */
export const STAGE_SPAN_PREFIX = "kvpick.";

const DEFAULT_SERVICE_NAME = "kvpick";
/** GIE's chart default when the sampler env is absent: parent-based, 10 % of new root traces. */
const DEFAULT_RATIO = 0.1;

/** Environment variables read at start (the chart's `env:`). */
export type OtelEnv = Readonly<Record<string, string | undefined>>;

/** The `tracing` config section, as tracing reads it. */
export interface TracingSettings {
  /** Export spans over OTLP/HTTP (`--tracing`). */
  enabled: boolean;
}

export function createTracing(config: TracingSettings, env: OtelEnv, logger: Logger): Tracing {
  if (!config.enabled) return NO_TRACING;
  const log = logger.child({ component: "tracing" });
  const url = tracesUrl(env);
  const sampler = samplerFrom(env, log);
  const provider = new TracerProvider({
    resource: resourceFromAttributes({
      ...parseKeyPairsIntoRecord(env.OTEL_RESOURCE_ATTRIBUTES ?? ""),
      "service.name": nonEmpty(env.OTEL_SERVICE_NAME) ?? DEFAULT_SERVICE_NAME,
    }),
    sampler,
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: new OTLPTraceExporter({ url, timeoutMillis: 10_000 }),
        // Bounded memory if the collector is down: spans beyond the queue are dropped, never block.
        maxQueueSize: 2048,
        maxExportBatchSize: 512,
        scheduledDelayMillis: 1000,
      }),
    ],
  });
  if (new URL(url).port === "4317")
    log.warn(
      { url },
      "OTLP endpoint on port 4317 (OTLP/gRPC); kvpick exports OTLP/HTTP: point it at the collector's 4318",
    );
  log.info({ url, sampler: sampler.toString() }, "tracing on: exporting spans over OTLP/HTTP");
  const tracer = provider.getTracer("kvpick");
  return {
    tracer: new OtelRequestTracer(tracer),
    name: "tracing",
    start: () => undefined,
    stop: () => provider.shutdown(),
  };
}

/** OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as is, else OTEL_EXPORTER_OTLP_ENDPOINT + `/v1/traces` (the spec's rule). */
export function tracesUrl(env: OtelEnv): string {
  const traces = nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  if (traces !== undefined) return traces;
  const base = nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT) ?? "http://localhost:4318";
  return `${base.replace(/\/+$/, "")}/v1/traces`;
}

/** The spec's OTEL_TRACES_SAMPLER values; an unknown one falls back to GIE's default with a warning. */
export function samplerFrom(env: OtelEnv, log?: Logger): Sampler {
  const name = nonEmpty(env.OTEL_TRACES_SAMPLER) ?? "parentbased_traceidratio";
  const arg = Number.parseFloat(env.OTEL_TRACES_SAMPLER_ARG ?? "");
  const ratio = Number.isFinite(arg) && arg >= 0 && arg <= 1 ? arg : DEFAULT_RATIO;
  switch (name) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return new TraceIdRatioBasedSampler(ratio);
    case "parentbased_always_on":
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
    default:
      log?.warn({ sampler: name }, "unsupported OTEL_TRACES_SAMPLER; using parentbased_traceidratio");
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  }
}

const HEADER_GETTER: TextMapGetter<ReadonlyMap<string, string>> = {
  keys: (carrier) => [...carrier.keys()],
  get: (carrier, key) => carrier.get(key),
};

class OtelRequestTracer implements RequestTracerImpl {
  readonly #tracer: Tracer;
  readonly #propagator = new W3CTraceContextPropagator();

  constructor(tracer: Tracer) {
    this.#tracer = tracer;
  }

  start(headers: ReadonlyMap<string, string>): RequestTraceImpl {
    const parent = headers.has("traceparent")
      ? this.#propagator.extract(ROOT_CONTEXT, headers, HEADER_GETTER)
      : ROOT_CONTEXT;
    const span = this.#tracer.startSpan("gateway.request", { kind: SpanKind.SERVER }, parent);
    // Not sampled: nothing will be exported, so the stages cost nothing either.
    if (!span.isRecording()) {
      span.end();
      return NOOP_TRACE;
    }
    return new OtelRequestTrace(this.#tracer, span, trace.setSpan(parent, span));
  }
}

class OtelRequestTrace implements RequestTraceImpl {
  readonly #tracer: Tracer;
  readonly #span: Span;
  readonly #context: Context;
  #ended = false;

  constructor(tracer: Tracer, span: Span, context: Context) {
    this.#tracer = tracer;
    this.#span = span;
    this.#context = context;
  }

  stage(name: string, startMs: number, endMs: number): void {
    if (this.#ended) return;
    const origin = performance.timeOrigin;
    this.#tracer
      .startSpan(
        STAGE_SPAN_PREFIX + name,
        { kind: SpanKind.INTERNAL, startTime: origin + startMs },
        this.#context,
      )
      .end(origin + endMs);
  }

  set(key: string, value: TraceValue): void {
    if (!this.#ended) this.#span.setAttribute(key, value);
  }

  end(errorCode?: string | null): void {
    if (this.#ended) return;
    this.#ended = true;
    if (errorCode != null) {
      this.#span.setAttribute("error.type", errorCode);
      this.#span.setStatus({ code: SpanStatusCode.ERROR, message: errorCode });
    }
    this.#span.end();
  }
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === "" ? undefined : v.trim();
}
