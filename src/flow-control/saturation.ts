// The utilization saturation detector (GIE v1.5 `utilization-detector`): an endpoint's saturation is
// max(waiting / queueDepthThreshold, kvUsage / kvCacheUtilThreshold); the pool's is the mean over ready
// endpoints; an endpoint whose metrics are not fresh counts as fully saturated (1.0), as in GIE. kvpick adds
// its own dispatch credit: requests routed since the endpoint's last scrape count as waiting, so a burst
// released in one scrape interval cannot overshoot (the scrape has not seen it yet).
import type { Endpoint } from "../endpoints/endpoint.js";

export interface SaturationParams {
  /** Waiting requests at which an endpoint counts as saturated (GIE default 5). */
  readonly queueDepthThreshold: number;
  /** KV-cache usage in [0, 1] at which an endpoint counts as saturated (GIE default 0.8). */
  readonly kvCacheUtilThreshold: number;
}

export interface PoolSaturation {
  /** Mean endpoint saturation; ≥ 1 means the pool is saturated. 1 when there is no ready endpoint. */
  readonly saturation: number;
  /** Ready endpoints considered; 0 = the pool has no capacity at all (503, never queued). */
  readonly endpoints: number;
}

export function endpointSaturation(e: Endpoint, p: SaturationParams): number {
  if (e.metricsState !== "fresh" || e.metrics === null) return 1;
  const waiting = e.metrics.waiting + (e.dispatched?.requests ?? 0);
  return Math.max(waiting / p.queueDepthThreshold, e.metrics.kvCacheUsage / p.kvCacheUtilThreshold);
}

export function poolSaturation(endpoints: readonly Endpoint[], p: SaturationParams): PoolSaturation {
  if (endpoints.length === 0) return { saturation: 1, endpoints: 0 };
  let sum = 0;
  for (const e of endpoints) sum += endpointSaturation(e, p);
  return { saturation: sum / endpoints.length, endpoints: endpoints.length };
}
