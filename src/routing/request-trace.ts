// Tracing as routing needs it, declared here by its consumer (observability/tracing.ts implements it over
// OpenTelemetry). With tracing off the director holds NO_TRACE_START, whose calls do nothing and allocate
// nothing, so the request path pays only a few empty calls.

/** One request's trace: a span for the request, with a finished child span per routing stage. */
export interface RequestTrace {
  /**
   * A routing stage that ran from `startMs` to `endMs` (`performance.now()` milliseconds), exported as the
   * child span `kvpick.<name>`: parse | tokenize (render + tokenize) | hash | prefix-lookup | schedule.
   */
  stage(name: string, startMs: number, endMs: number): void;
  /** An attribute of the request span: ids, bounded names and counts only, never prompt text. */
  set(key: string, value: string | number | boolean): void;
  /** Ends the request span, failed when `errorCode` is given. Called once; later calls are ignored. */
  end(errorCode?: string | null): void;
}

export interface RequestTracer {
  /** Starts a request's trace, joining the caller's through `traceparent` in `headers` (lower-case names). */
  start(headers: ReadonlyMap<string, string>): RequestTrace;
}

const NO_TRACE: RequestTrace = { stage() {}, set() {}, end() {} };
/** Tracing off. */
export const NO_TRACER: RequestTracer = { start: () => NO_TRACE };
