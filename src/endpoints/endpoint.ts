// Endpoint types shared by the store, the load scraper and (type-only) the scheduling plugins. A pure types
// file: no runtime code, so any module may import it without pulling in the store.

/** Where a model server is reached. `address` ("ip:port", IPv6 as "[ip]:port") is the endpoint's identity. */
export interface EndpointSpec {
  readonly address: string;
  /** IP literal without brackets; the KV index may know a pod by this alone (topic `kv@<ip>@<model>`). */
  readonly ip: string;
  readonly port: number;
  /** Pod name when discovery knows it (audit logs); null for a static `--endpoints` list. */
  readonly name: string | null;
  /** Only ready endpoints are scheduling candidates. Static endpoints are always ready. */
  readonly ready: boolean;
  /** Kubernetes discovery: the pod ("namespace/name") this endpoint belongs to. */
  readonly pod?: string;
  /** Kubernetes discovery: index of the pool's target port (data-parallel rank); the KV-event port offset. */
  readonly rank?: number;
}

/** LoRA state from `vllm:lora_requests_info` (its latest sample). */
export interface LoraInfo {
  /** `max_lora` label: adapters the server can hold at once. */
  readonly maxLora: number;
  readonly running: readonly string[];
  readonly waiting: readonly string[];
}

/** One successful scrape of a vLLM `/metrics` page, summed over the `engine` (data-parallel rank) label. */
export interface LoadMetrics {
  /** `vllm:num_requests_waiting`, summed over engines. */
  readonly waiting: number;
  /** `vllm:num_requests_running`, summed over engines. */
  readonly running: number;
  /** `vllm:kv_cache_usage_perc` (fallback `vllm:gpu_cache_usage_perc`) in [0, 1], averaged over engines. */
  readonly kvCacheUsage: number;
  /** From `vllm:cache_config_info` labels; null when the page lacks them. */
  readonly blockSize: number | null;
  readonly numGpuBlocks: number | null;
  readonly prefixCachingHashAlgo: string | null;
  /** Null when LoRA is not enabled on the server. */
  readonly lora: LoraInfo | null;
  /** Served model names its load gauges carry (`model_name` label; at most a few, length-capped). */
  readonly models?: readonly string[];
}

/**
 * How far the endpoint's `metrics` can be trusted:
 * - `pending`: never scraped yet (`metrics` is null);
 * - `fresh`:   the latest scrape succeeded within `staleAfterMs`;
 * - `stale`:   the latest scrape succeeded but longer ago than `staleAfterMs` (the scraper is stuck);
 * - `failed`:  the latest scrape failed (refused, timed out, bad status, unparsable page).
 * Anything but `fresh` is scored as a saturated pod by the load scorers.
 */
export type MetricsState = "pending" | "fresh" | "stale" | "failed";

/**
 * Load kvpick itself put on an endpoint that its scraped metrics cannot show yet (endpoints/dispatch-ledger.ts),
 * so a burst does not pile onto the pod that looked idlest at the last scrape.
 */
export interface DispatchCredit {
  /** Requests routed since the latest successful scrape (SMG's since-poll credit). */
  readonly requests: number;
  /** Their prompt tokens kvpick expected the pod to compute (not found in its cache). */
  readonly prefillTokens: number;
  /** Prompt tokens of routed requests whose first token has not come back yet (any scrape age). */
  readonly pendingPrefillTokens: number;
  /** Routed requests whose response has not finished. */
  readonly inflight: number;
}

/** An immutable snapshot of one endpoint, as handed to scheduling. */
export interface Endpoint extends EndpointSpec {
  /** Latest successful reading (possibly old: check `metricsState`). */
  readonly metrics: LoadMetrics | null;
  readonly metricsState: MetricsState;
  /** Milliseconds since the latest successful scrape; null when never scraped. */
  readonly metricsAgeMs: number | null;
  /** Why the latest scrape failed; null unless `metricsState` is `failed`. */
  readonly lastScrapeError: string | null;
  /** Routed since the latest scrape (absent or zero when dispatch credit is off). */
  readonly dispatched?: DispatchCredit;
}

/** What the store tells its listeners (e.g. the KV-event subscriber opens/closes per-pod subscriptions). */
export type EndpointChange =
  | { readonly kind: "added"; readonly endpoint: EndpointSpec }
  | { readonly kind: "updated"; readonly endpoint: EndpointSpec; readonly previous: EndpointSpec }
  | { readonly kind: "removed"; readonly endpoint: EndpointSpec };
