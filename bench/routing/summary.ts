// Figures of one run: TTFT quantiles, throughput, hit rate and queue, overall and per load stage.
import type { RunResult } from "./virtual-run.js";
import type { Workload } from "./workloads.js";

/** Linear-interpolated quantile of an ascending array (NaN when empty). */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const pos = (n - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export interface Figures {
  requests: number;
  ttftP50: number;
  ttftP90: number;
  ttftP99: number;
  ttftMean: number;
  /** Output tokens / virtual seconds from t = 0 to the last request's end. */
  outputTokensPerSecond: number;
  /** Σ cached prompt tokens / Σ prompt tokens, as the engines report them (usage cached_tokens). */
  hitRate: number;
  meanWaiting: number;
  preemptions: number;
  /** Mean seconds a request waited at the client for a concurrency slot (0 in open loop). */
  clientWaitMean: number;
}

export interface StageFigures {
  qps: number;
  requests: number;
  ttftP50: number;
  ttftP90: number;
  /** Output tokens generated during the stage's window / its length. */
  outputTokensPerSecond: number;
  meanWaiting: number;
}

export interface Summary {
  overall: Figures;
  stages: StageFigures[];
}

function figures(records: RunResult["records"], meanWaiting: number, makespan: number): Figures {
  const ttfts = Float64Array.from(records, (r) => r.ttft).sort();
  let prompt = 0;
  let cached = 0;
  let out = 0;
  let pre = 0;
  let cw = 0;
  for (const r of records) {
    cw += r.clientWait;
    prompt += r.promptTokens;
    cached += r.cachedTokens;
    out += r.outputTokens;
    pre += r.preemptions;
  }
  return {
    requests: records.length,
    ttftP50: quantile(ttfts, 0.5),
    ttftP90: quantile(ttfts, 0.9),
    ttftP99: quantile(ttfts, 0.99),
    ttftMean: ttfts.reduce((s, x) => s + x, 0) / Math.max(1, ttfts.length),
    outputTokensPerSecond: makespan > 0 ? out / makespan : 0,
    hitRate: prompt > 0 ? cached / prompt : 0,
    meanWaiting,
    preemptions: pre,
    clientWaitMean: records.length > 0 ? cw / records.length : 0,
  };
}

export function summarize(result: RunResult, workload: Workload): Summary {
  const overall = figures(result.records, result.meanWaiting, result.makespan);
  let start = 0;
  const stages = workload.stages.map((s, i) => {
    const recs = result.records.filter((r) => r.stage === i);
    let tokens = 0;
    for (let t = Math.floor(start); t < Math.floor(start + s.seconds); t++)
      tokens += result.tokensPerSecond[t] ?? 0;
    start += s.seconds;
    const ttfts = Float64Array.from(recs, (r) => r.ttft).sort();
    return {
      qps: s.qps,
      requests: recs.length,
      ttftP50: quantile(ttfts, 0.5),
      ttftP90: quantile(ttfts, 0.9),
      outputTokensPerSecond: tokens / s.seconds,
      meanWaiting: result.stageMeanWaiting[i] ?? 0,
    };
  });
  return { overall, stages };
}
