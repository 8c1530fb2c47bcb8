// The ext_proc server's metrics, as the recorder ext-proc/server.ts declares (ExtProcRecorder): open streams,
// and each request's outcome on the request-path families (epp_requests_total, epp_inflight_requests), which
// metrics.ts registers. Outcome codes are kvpick's own statuses (a handful), so their children are cached.
import { type Counter, Gauge, type Registry } from "prom-client";

export class ExtProcMetrics {
  readonly #streams: Gauge;
  readonly #requests: Counter<"code">;
  readonly #inflight: Gauge;
  readonly #byCode = new Map<number, ReturnType<Counter<"code">["labels"]>>();

  constructor(registry: Registry, requestFamilies: { requests: Counter<"code">; inflight: Gauge }) {
    this.#streams = new Gauge({
      name: "epp_extproc_streams_active",
      help: "Open ext_proc gRPC streams (Envoy keeps one per in-flight HTTP request).",
      registers: [registry],
    });
    this.#requests = requestFamilies.requests;
    this.#inflight = requestFamilies.inflight;
  }

  streamOpened(): void {
    this.#streams.inc();
  }

  streamClosed(): void {
    this.#streams.dec();
  }

  answered(status: number): void {
    let child = this.#byCode.get(status);
    if (child === undefined) {
      child = this.#requests.labels({ code: String(status) });
      this.#byCode.set(status, child);
    }
    child.inc();
    if (status === 200) this.#inflight.inc();
  }

  responseDone(): void {
    this.#inflight.dec();
  }
}
