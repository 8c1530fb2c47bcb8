// TTFT cost scorer: predicts each candidate's time to first token and scores the fastest highest, so cache
// and load are traded in one unit (seconds) instead of weighted points:
//
//   backlog  = max(waiting × tokens per queued request + prompt tokens kvpick routed there since the scrape,
//                  prompt tokens kvpick routed there whose first token has not come back)
//   credit   = 1 / (1 + creditDecay × (backlog − least backlog) / prompt tokens)      (Dynamo/SMG decay)
//   uncached = prompt tokens − credit × cached tokens (GPU blocks 1.0, CPU 0.8: the index's tier weights)
//   TTFT     = (backlog + uncached) / prefill rate + running × runningRequestSeconds + λ·k / (1 − k)
//
// k is the KV-cache usage (plus routed, not yet scraped, prompt tokens): the λ·k/(1−k) barrier grows
// smoothly as a pod nears preemption. A hot prefix therefore spills to a second pod once waiting behind the
// first costs more than recomputing the prefix elsewhere — no threshold cliff. Score = exp(−(TTFT − best) /
// scoreScaleSeconds), so the best candidate scores 1. Pods without fresh metrics score 0; pods the KV index
// has never heard of are matched by estimated prefix matching (`estimatedFallback`).
import { z } from "zod";
import type { Endpoint } from "../../../endpoints/endpoint.js";
import { fallbackEstimates, recordFallback } from "../../estimated/estimated-fallback.js";
import { definePlugin } from "../../registry.js";
import { projectedKvUsage } from "./kv-cache-utilization-scorer.js";
import type { CycleState, Scorer } from "../../types.js";
import { PrefixHeat } from "./prefix-heat.js";

const positive = (d: number) => z.number().positive().default(d);
const nonNegative = (d: number) => z.number().min(0).default(d);

export const ttftCostParams = z.strictObject({
  /**
   * One pod's prefill throughput, tokens/s. Default: Qwen3-32B on 2×H100 (TP2), the reference deployment,
   * ≈ 15,900 tokens/s (llm-d's peakPrefillThroughput 15,928); set it for other models and GPUs.
   */
  prefillTokensPerSecond: positive(15_900),
  /** Prefill tokens assumed per request in vLLM's waiting queue; null = learnt from what kvpick routes. */
  queuedRequestTokens: z.number().min(0).nullable().default(null),
  /**
   * Seconds each running sequence adds. It makes every step longer by its decode token and KV reads (~0.4 ms
   * at 8k context on the reference hardware); a new request waits ~1.5 steps, and by Little's law as many
   * later arrivals meet its decode as there are requests running now: ~3 steps' worth at long contexts, plus
   * the decode time itself that a batch imbalance costs (bench/README.md: 3 ms balances hot prefixes' decode).
   */
  runningRequestSeconds: nonNegative(0.003),
  /** λ of the KV-pressure barrier λ·k/(1−k), seconds (SMG's λ). */
  kvPressureSeconds: nonNegative(0.05),
  /**
   * Decay of the cache credit with the pod's backlog above the least backlogged candidate, in units of this
   * request's prompt (Dynamo's overlap-credit decay, SMG's overlap_decay): at 1, a pod queueing one prompt's
   * worth more than the best keeps half its credit, so a hot prefix spills early. 0 = the plain TTFT model.
   */
  creditDecay: nonNegative(0),
  /**
   * β: the uncached tokens are charged (1 + β) times. A prefill delays every later request on that pod, so
   * recomputing a prefix elsewhere costs the cluster more than this request's TTFT shows; β > 0 keeps a
   * prefix where it is until the wait there exceeds β × the recompute time.
   */
  recomputeWeight: nonNegative(0.75),
  /**
   * Time constant of a prefix's heat (requests routed with it lately). β is divided by the heat of the
   * request's longest cached prefix once it passes 1, so a prefix requested many times a second — whose
   * replica on a second pod will serve many requests — is replicated early; 0 = β always applies in full.
   */
  heatSeconds: nonNegative(1),
  /** A candidate this many seconds slower than the best scores 1/e. */
  scoreScaleSeconds: positive(0.5),
  /** Score endpoints without KV events by estimated (prompt-text) prefix matching. */
  estimatedFallback: z.boolean().default(true),
});
export type TtftCostParams = z.infer<typeof ttftCostParams>;

/** SMG's assumption for a request of unknown size, until kvpick has routed some. */
const INITIAL_QUEUED_TOKENS = 1024;
/** Weight of one routed request in the running mean of prefill tokens per request. */
const MEAN_ALPHA = 0.02;
/** The barrier is capped here: beyond it every pod is saturated and the backlog decides. */
const MAX_KV = 0.99;

/** Prefixes whose heat is remembered (a Map entry each, ~80 bytes). */
const HEAT_KEYS = 65_536;

/** Per-candidate predictions for one request (exported for tests and diagnostics). */
export interface TtftPrediction {
  readonly seconds: Float64Array;
  /** Prompt tokens expected to be computed on each candidate (after the decayed credit). */
  readonly uncachedTokens: Float64Array;
  /** Longest prefix any candidate holds, in blocks: the prefix a spill would replicate. */
  readonly sharedBlocks: number;
}

export const ttftCostScorer = definePlugin({
  type: "ttft-cost-scorer",
  role: "scorer",
  params: ttftCostParams,
  create: (name, params, context): Scorer => {
    let meanQueued = params.queuedRequestTokens ?? INITIAL_QUEUED_TOKENS;
    const heat =
      params.heatSeconds > 0 ? new PrefixHeat(params.heatSeconds * 1000, HEAT_KEYS, context.now) : null;
    const predict = (cycle: CycleState, candidates: readonly Endpoint[]): TtftPrediction =>
      cycle.memo(`ttft-cost/${name}`, () => {
        const blockSize = context.blockSize ?? 64; // per cycle: it may be learnt after startup
        const n = candidates.length;
        const seconds = new Float64Array(n).fill(Number.POSITIVE_INFINITY);
        const uncachedTokens = new Float64Array(n);
        if (n === 0) return { seconds, uncachedTokens, sharedBlocks: 0 };
        const match = cycle.prefixMatch(candidates);
        const prompt = cycle.request.promptTokens ?? match.totalBlocks * blockSize;
        const est = params.estimatedFallback ? fallbackEstimates(context, cycle, candidates) : null;
        const backlog = new Float64Array(n);
        let least = Number.POSITIVE_INFINITY;
        for (let i = 0; i < n; i++) {
          const m = candidates[i]!.metrics;
          if (m === null) continue;
          const d = candidates[i]!.dispatched;
          backlog[i] = Math.max(
            m.waiting * meanQueued + (d?.prefillTokens ?? 0),
            d?.pendingPrefillTokens ?? 0,
          );
          if (candidates[i]!.metricsState === "fresh") least = Math.min(least, backlog[i]!);
        }
        const unit = Math.max(prompt, blockSize);
        let sharedBlocks = 0;
        for (let i = 0; i < n; i++) sharedBlocks = Math.max(sharedBlocks, match.blocks[i] ?? 0);
        const chain = cycle.request.blockHashes;
        const h = heat === null || sharedBlocks === 0 ? 0 : heat.heat(words(chain), sharedBlocks - 1);
        const beta = params.recomputeWeight / Math.max(1, h);
        for (let i = 0; i < n; i++) {
          const e = candidates[i]!;
          const m = e.metrics;
          if (e.metricsState !== "fresh" || m === null) continue;
          const estimated = est !== null && !Number.isNaN(est.tokens[i]!) ? est.tokens[i]! : null;
          const cachedTokens = Math.min(prompt, estimated ?? (match.weighted[i] ?? 0) * blockSize);
          const credit = 1 / (1 + (params.creditDecay * (backlog[i]! - least)) / unit);
          const uncached = Math.max(0, prompt - credit * cachedTokens);
          const k = Math.min(MAX_KV, projectedKvUsage(e, m));
          const running = m.running + (e.dispatched?.requests ?? 0);
          uncachedTokens[i] = uncached;
          seconds[i] =
            (backlog[i]! + (1 + beta) * uncached) / params.prefillTokensPerSecond +
            running * params.runningRequestSeconds +
            (params.kvPressureSeconds * k) / (1 - k);
        }
        return { seconds, uncachedTokens, sharedBlocks };
      });
    return {
      type: "ttft-cost-scorer",
      name,
      role: "scorer",
      score(cycle, candidates) {
        const { seconds } = predict(cycle, candidates);
        const out = new Float64Array(candidates.length);
        let best = Number.POSITIVE_INFINITY;
        for (const s of seconds) best = Math.min(best, s);
        if (best === Number.POSITIVE_INFINITY) return out;
        for (let i = 0; i < out.length; i++)
          out[i] = Math.exp(-(seconds[i]! - best) / params.scoreScaleSeconds);
        return out;
      },
      preRequest(cycle, picked) {
        const p = predict(cycle, picked.candidates);
        if (params.queuedRequestTokens === null)
          meanQueued += MEAN_ALPHA * ((p.uncachedTokens[picked.index] ?? 0) - meanQueued);
        // Heat goes to the prefix this request shares with earlier ones (all of it when it is new).
        const chain = cycle.request.blockHashes;
        if (heat !== null && chain.length > 0)
          heat.bump(words(chain), (p.sharedBlocks > 0 ? p.sharedBlocks : chain.length) - 1);
        if (params.estimatedFallback) recordFallback(context, cycle, picked);
      },
    };
  },
});

const words = (chain: BigUint64Array) => new Uint32Array(chain.buffer, chain.byteOffset, chain.length * 2);
