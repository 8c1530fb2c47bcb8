// Shared by the load-count scorers (queue, running): min-max over the candidates with fresh metrics, least
// loaded → 1, most → 0, all equal → 1. A pod without fresh metrics scores 0, as GIE treats stale metrics as
// saturated: its load may have grown since it last answered. Requests kvpick routed there since that scrape
// (dispatch credit, when on) count as load the reading cannot show yet.
import type { Endpoint, LoadMetrics } from "../../../endpoints/endpoint.js";

export function minMaxLoadScores(
  candidates: readonly Endpoint[],
  scraped: (m: LoadMetrics) => number,
): Float64Array {
  const load = (e: Endpoint, m: LoadMetrics) => scraped(m) + (e.dispatched?.requests ?? 0);
  const out = new Float64Array(candidates.length);
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const e of candidates) {
    if (e.metricsState !== "fresh" || e.metrics === null) continue;
    const v = load(e, e.metrics);
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  candidates.forEach((e, i) => {
    if (e.metricsState !== "fresh" || e.metrics === null) return;
    out[i] = max === min ? 1 : (max - load(e, e.metrics)) / (max - min);
  });
  return out;
}
