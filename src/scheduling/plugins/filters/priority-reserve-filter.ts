// A dynamic reserve for the high priority band (issue 17's interactive TTFT target; no peer has one). Under
// overload every pod's vLLM step carries batch prefill chunks (a 2,000-token chunk ≈ 0.14 s on the reference
// pod), and vLLM runs the running requests' chunks before a newly arrived request: an interactive request that
// lands there waits one or two such steps whatever kvpick's queue does (bench/README.md "Flow control under
// overload"). So while the high band has traffic, `k` pods take no new lower-band requests: their steps carry
// only the high band's short prefills and decodes. `k` follows the high band's demand (its uncached prompt
// tokens per second over `podTokensPerSecond`, between 1 and `maxPods`); the reserve dissolves `idleMs` after
// the last high-band request. Reserved pods are sticky (the high band's prefixes stay warm there) and chosen
// least loaded. High-band requests keep only reserved pods; lower bands lose them. It only steers: a filter
// that would leave no candidate keeps them all. The band comes from flow control (`SchedulingRequest.priority`):
// without flow control every request passes untouched.
import { z } from "zod";
import { definePlugin } from "../../registry.js";
import type { Endpoint, Filter } from "../../types.js";

export const priorityReserveParams = z.strictObject({
  /** Requests admitted with at least this priority are the band the reserve serves. */
  protectedPriority: z.number().int().default(1),
  /** Most pods reserved at once (the reserve never takes every candidate: one is always left to the rest). */
  maxPods: z.number().int().min(1).max(1024).default(1),
  /** Uncached prompt tokens per second of the protected band one reserved pod takes (sets k from demand). */
  podTokensPerSecond: z.number().positive().default(4000),
  /** The reserve dissolves once no protected request was routed for this long. */
  idleMs: z.number().int().min(1).max(3_600_000).default(5000),
  /** Half-life of the protected band's token rate. */
  halfLifeMs: z.number().int().min(1).max(3_600_000).default(2000),
});
export type PriorityReserveParams = z.infer<typeof priorityReserveParams>;

/** Requests waiting at the pod plus those routed since its last scrape. */
const queued = (e: Endpoint): number => (e.metrics?.waiting ?? 0) + (e.dispatched?.requests ?? 0);

export const priorityReserveFilter = definePlugin({
  type: "priority-reserve-filter",
  role: "filter",
  params: priorityReserveParams,
  create: (name, p, context): Filter => {
    const now = context.now ?? (() => performance.now());
    const blockSize = () => context.blockSize ?? 64;
    /** Reserved addresses, oldest first (shrinking drops the newest). */
    let reserved: string[] = [];
    let lastSeen = Number.NEGATIVE_INFINITY;
    /** Decayed protected-band uncached tokens; rate = tokens × ln2 / halfLife. */
    let tokens = 0;
    let at = 0;
    const decayTo = (t: number) => {
      if (t > at) tokens *= 2 ** (-(t - at) / p.halfLifeMs);
      at = Math.max(at, t);
    };
    const wanted = (t: number): number => {
      if (t - lastSeen > p.idleMs) return 0;
      decayTo(t);
      const rate = (tokens * Math.LN2 * 1000) / p.halfLifeMs;
      return Math.min(p.maxPods, Math.max(1, Math.ceil(rate / p.podTokensPerSecond)));
    };
    /**
     * The reserve among these candidates: sticky members first, then the least loaded others. Remembered only
     * from a whole-pool view: a request with a subset hint sees part of the pool and must not move it.
     */
    const reserveAmong = (candidates: readonly Endpoint[], t: number, partial: boolean): Set<string> => {
      const k = Math.min(wanted(t), candidates.length - 1);
      if (k <= 0) {
        if (!partial) reserved = [];
        return new Set();
      }
      const present = new Set(candidates.map((e) => e.address));
      const kept = reserved.filter((a) => present.has(a)).slice(0, k);
      if (kept.length < k) {
        const taken = new Set(kept);
        const rest = candidates
          .filter((e) => !taken.has(e.address))
          .sort((a, b) => queued(a) - queued(b) || (a.address < b.address ? -1 : 1));
        for (const e of rest.slice(0, k - kept.length)) kept.push(e.address);
      }
      if (!partial) reserved = kept;
      return new Set(kept);
    };
    return {
      type: "priority-reserve-filter",
      name,
      role: "filter",
      filter(cycle, candidates) {
        const priority = cycle.request.priority;
        if (priority === undefined || candidates.length < 2) return candidates;
        const t = now();
        const high = priority >= p.protectedPriority;
        if (high) lastSeen = t;
        const reserve = reserveAmong(candidates, t, (cycle.request.subsetHint ?? null) !== null);
        if (reserve.size === 0) return candidates;
        const keep = candidates.filter((e) => reserve.has(e.address) === high);
        return keep.length === 0 ? candidates : keep;
      },
      preRequest(cycle, picked) {
        const priority = cycle.request.priority;
        if (priority === undefined || priority < p.protectedPriority) return;
        const match = cycle.prefixMatch(picked.candidates);
        const prompt = cycle.request.promptTokens ?? match.totalBlocks * blockSize();
        const cached = (match.blocks[picked.index] ?? 0) * blockSize();
        const t = now();
        decayTo(t);
        tokens += Math.max(0, prompt - cached);
      },
    };
  },
});
