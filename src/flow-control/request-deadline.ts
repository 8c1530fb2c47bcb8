// A client's own queueing deadline, from headers a gateway or client sets: llm-d's `x-llm-d-inference-ttl`
// (a Go duration, e.g. "1500ms", "2s") and Envoy's `x-envoy-expected-rq-timeout-ms` (the route timeout Envoy
// will enforce: waiting longer in kvpick's queue is pointless). Malformed values are ignored, never an error:
// the configured TTL still bounds the wait.

export const TTL_HEADER = "x-llm-d-inference-ttl";
export const ENVOY_TIMEOUT_HEADER = "x-envoy-expected-rq-timeout-ms";

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Go's time.ParseDuration subset: one or more `<number><unit>` terms; null when malformed or negative. */
export function parseGoDurationMs(text: string): number | null {
  const s = text.trim();
  if (s === "" || s.length > 64) return null;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let at = 0;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    at = re.lastIndex;
  }
  return at === s.length && Number.isFinite(total) ? total : null;
}

/** The smallest deadline any header gives, in ms from now; null when none does. */
export function clientDeadlineMs(headers: ReadonlyMap<string, string>): number | null {
  let best: number | null = null;
  const ttl = headers.get(TTL_HEADER);
  if (ttl !== undefined) best = parseGoDurationMs(ttl);
  const envoy = headers.get(ENVOY_TIMEOUT_HEADER);
  if (envoy !== undefined && /^\d{1,12}$/.test(envoy.trim())) {
    const ms = Number(envoy.trim());
    if (ms > 0) best = best === null ? ms : Math.min(best, ms);
  }
  return best;
}
