// The pool's gauges, read at scrape time (no bookkeeping on the request path): GIE's `inference_pool_*`
// names, which dashboards expect, per-endpoint freshness of the load reading, and kvpick's own dispatch
// credit. The sources are declared here, as the fields these gauges read; endpoints/endpoint-store.ts
// provides them.
import { Gauge, type Registry } from "prom-client";

/** One pool endpoint as the gauges read it. */
export interface PoolEndpointReading {
  /** "ip:port", as routed to. */
  address: string;
  /** Pod name ("namespace/pod"), when discovery knows it. */
  name?: string | null | undefined;
  ready: boolean;
  metricsState: string;
  /** The latest load reading, or null before the first scrape. */
  metrics: { waiting: number; kvCacheUsage: number } | null;
}

/** The pool as the scrape-time gauges read it. */
export interface PoolStatsSource {
  /** Every endpoint of the pool with its latest load reading, ready or not. */
  endpoints(): readonly PoolEndpointReading[];
}

/** Pool gauges; a pod whose /metrics fails or lags counts as not fresh (and is scored as saturated). */
export function watchPool(registry: Registry, pool: PoolStatsSource, poolName: string): void {
  const registers = [registry];
  const fresh = (e: PoolEndpointReading) => e.ready && e.metricsState === "fresh" && e.metrics !== null;
  new Gauge({
    name: "epp_endpoint_metrics_fresh",
    help: "1 while the endpoint's latest /metrics scrape succeeded recently, 0 when it failed, is stale or never ran.",
    labelNames: ["endpoint", "state"],
    registers,
    collect() {
      this.reset();
      for (const e of pool.endpoints())
        this.set({ endpoint: e.address, state: e.metricsState }, fresh(e) ? 1 : 0);
    },
  });
  new Gauge({
    name: "inference_pool_ready_pods",
    help: "Ready endpoints in the pool (GIE name).",
    labelNames: ["name"],
    registers,
    collect() {
      this.set({ name: poolName }, pool.endpoints().filter((e) => e.ready).length);
    },
  });
  const average = (read: (e: PoolEndpointReading) => number) =>
    function (this: Gauge<"name">) {
      const live = pool.endpoints().filter(fresh);
      this.set(
        { name: poolName },
        live.length === 0 ? 0 : live.reduce((s, e) => s + read(e), 0) / live.length,
      );
    };
  new Gauge({
    name: "inference_pool_average_kv_cache_utilization",
    help: "Mean KV-cache usage (0..1) over endpoints with fresh metrics (GIE name).",
    labelNames: ["name"],
    registers,
    collect: average((e) => e.metrics?.kvCacheUsage ?? 0),
  });
  new Gauge({
    name: "inference_pool_average_queue_size",
    help: "Mean waiting requests over endpoints with fresh metrics (GIE name).",
    labelNames: ["name"],
    registers,
    collect: average((e) => e.metrics?.waiting ?? 0),
  });
  new Gauge({
    name: "inference_pool_per_pod_queue_size",
    help: "Waiting requests per endpoint, from its latest scrape (GIE name).",
    labelNames: ["name", "model_server_pod"],
    registers,
    collect() {
      this.reset();
      for (const e of pool.endpoints())
        if (e.metrics !== null)
          this.set({ name: poolName, model_server_pod: e.name ?? e.address }, e.metrics.waiting);
    },
  });
}

/** Dispatch credit per endpoint: prompt tokens routed whose first token has not come back. */
export function watchDispatch(
  registry: Registry,
  source: {
    candidates(): readonly {
      address: string;
      dispatched?: { pendingPrefillTokens: number; inflight: number };
    }[];
  },
): void {
  new Gauge({
    name: "epp_endpoint_pending_prefill_tokens",
    help: "Prompt tokens kvpick routed to the endpoint that are not prefilled yet (first token not seen).",
    labelNames: ["endpoint"],
    registers: [registry],
    collect() {
      this.reset();
      for (const e of source.candidates())
        this.set({ endpoint: e.address }, e.dispatched?.pendingPrefillTokens ?? 0);
    },
  });
}
