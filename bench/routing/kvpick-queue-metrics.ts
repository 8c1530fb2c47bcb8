// What kvpick's own /metrics say about one flow-control run (flow-control-live.ts): requests by final outcome
// of the queue-duration histogram, the priority it resolved per flow, and the queue wait of dispatched
// requests — overall (mean; p50/p90 interpolated in GIE's buckets, as histogram_quantile) and per flow.
// Wall seconds × k = simulated seconds.

const f3 = (x: number) => (Number.isNaN(x) ? "–" : x.toFixed(3));

/** Prometheus text → samples of `name` (labels as a record). */
function samples(text: string, name: string): Array<{ labels: Record<string, string>; value: number }> {
  const out: Array<{ labels: Record<string, string>; value: number }> = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const brace = line.indexOf("{");
    const end = line.lastIndexOf("}");
    const labels: Record<string, string> = {};
    if (brace === name.length)
      for (const m of line.slice(brace + 1, end).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
        labels[m[1]!] = m[2]!;
    out.push({ labels, value: Number(line.slice((brace === name.length ? end : name.length) + 1).trim()) });
  }
  return out;
}

const QUEUE = "inference_extension_flow_control_request_queue_duration_seconds";
export const OUTCOME_OF_CODE: Record<string, string> = {
  EPP_QUEUE_TIMEOUT: "EvictedTTL",
  EPP_QUEUE_FULL: "RejectedCapacity",
  EPP_SHED: "RejectedCapacity",
  EPP_NO_ENDPOINTS: "RejectedCapacity",
};

/** kvpick's view: finished requests by outcome, and the queue wait (simulated s) of dispatched ones. */
export function kvpickFigures(text: string, k: number) {
  const counts = new Map<string, number>();
  // The priority kvpick resolved for each flow (from the watched InferenceObjectives), as it labels them.
  const priorities = new Map<string, Set<string>>();
  for (const s of samples(text, `${QUEUE}_count`)) {
    counts.set(s.labels.outcome!, (counts.get(s.labels.outcome!) ?? 0) + s.value);
    if (s.value > 0) {
      const set = priorities.get(s.labels.fairness_id!) ?? new Set<string>();
      set.add(s.labels.priority!);
      priorities.set(s.labels.fairness_id!, set);
    }
  }
  const dispatched = (m: string) => samples(text, m).filter((s) => s.labels.outcome === "Dispatched");
  const sum = dispatched(`${QUEUE}_sum`).reduce((a, s) => a + s.value, 0);
  const n = dispatched(`${QUEUE}_count`).reduce((a, s) => a + s.value, 0);
  // Mean wait of each flow's dispatched requests (which tenant waited where).
  const perFlow = new Map<string, { sum: number; n: number }>();
  for (const [m, key] of [
    [`${QUEUE}_sum`, "sum"],
    [`${QUEUE}_count`, "n"],
  ] as const)
    for (const s of dispatched(m)) {
      const e = perFlow.get(s.labels.fairness_id!) ?? { sum: 0, n: 0 };
      e[key] += s.value;
      perFlow.set(s.labels.fairness_id!, e);
    }
  const flowWaits = [...perFlow]
    .sort()
    .map(([f, e]) => `${f} ${f3(e.n > 0 ? (e.sum / e.n) * k : Number.NaN)}`)
    .join(", ");
  // Cumulative buckets of every dispatched series, merged by bound.
  const buckets = new Map<number, number>();
  for (const s of dispatched(`${QUEUE}_bucket`)) {
    const le = s.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(s.labels.le);
    buckets.set(le, (buckets.get(le) ?? 0) + s.value);
  }
  const bounds = [...buckets].sort((a, b) => a[0] - b[0]);
  /**
   * Histogram quantile as Prometheus' histogram_quantile (linear inside a bucket), in simulated s, formatted;
   * past the last finite bucket it is only known to exceed that bound ("> x").
   */
  const q = (p: number): string => {
    if (n === 0) return "–";
    const rank = p * n;
    let prevLe = 0;
    let prevC = 0;
    for (const [le, c] of bounds) {
      if (c >= rank) {
        if (!Number.isFinite(le)) return `> ${f3(prevLe * k)}`;
        return f3((prevLe + ((le - prevLe) * (rank - prevC)) / Math.max(1e-12, c - prevC)) * k);
      }
      prevLe = le;
      prevC = c;
    }
    return `> ${f3(prevLe * k)}`;
  };
  const routed = samples(text, "inference_objective_request_total").reduce((a, s) => a + s.value, 0);
  const flows = [...priorities]
    .sort()
    .map(([f, p]) => `${f} → priority ${[...p].join("/")}`)
    .join(", ");
  return {
    flows,
    flowWaits,
    counts,
    meanWait: n > 0 ? (sum / n) * k : Number.NaN,
    p50: q(0.5),
    p90: q(0.9),
    routed,
  };
}
