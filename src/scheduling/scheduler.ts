// One scheduling cycle per request: candidates → filters → weighted scorers → picker (GIE semantics:
// each score clamped to [0, 1], total = Σ weight × score, not normalised by Σ weights). Outcomes, including
// "nothing to pick from", are returned as values; the caller maps them to HTTP statuses.
import type { PrefixLookup } from "../cache-view/prefix-lookup.js";
import { estimatedCachedTokens, SchedulingCycle } from "./cycle-state.js";
import type {
  CycleState,
  Endpoint,
  EndpointScore,
  EndpointSource,
  PickedEndpoint,
  Plugin,
  PluginContext,
  ScoredEndpoint,
  SchedulingProfile,
  SchedulingRequest,
  SchedulingResult,
} from "./types.js";

export interface SchedulerOptions {
  readonly profile: SchedulingProfile;
  readonly endpoints: EndpointSource;
  readonly context: PluginContext;
  /** The read model's view for requests scheduled without their own (cache-view/); null = load alone. */
  readonly lookup: PrefixLookup | null;
  /**
   * Runs after every pick, after the plugins' preRequest hooks: the scheduler-wide services that learn from
   * routing decisions (speculative prefix entries, cache-view's `routed`) hang here (create-scheduler.ts). Dispatch credit is the
   * director's: it also needs the response path.
   */
  readonly onPicked?: (cycle: CycleState, picked: PickedEndpoint) => void;
  /** Told about a preRequest hook or onPicked that threw; the request is routed regardless. */
  readonly onHookError?: (source: string, err: unknown) => void;
}

/** NaN and anything outside [0, 1] from a misbehaving scorer is pulled back into range. */
const clamp01 = (v: number): number => (v > 0 ? Math.min(v, 1) : 0);

export class Scheduler {
  readonly profile: SchedulingProfile;
  readonly #endpoints: EndpointSource;
  readonly #context: PluginContext;
  readonly #lookup: PrefixLookup | null;
  readonly #onPicked: SchedulerOptions["onPicked"];
  readonly #onHookError: SchedulerOptions["onHookError"];
  /** The plugins with a preRequest hook, in profile order (filters, scorers, picker). */
  readonly #hooked: readonly Plugin[];

  constructor(options: SchedulerOptions) {
    this.profile = options.profile;
    this.#endpoints = options.endpoints;
    this.#context = options.context;
    this.#lookup = options.lookup;
    this.#onPicked = options.onPicked;
    this.#onHookError = options.onHookError;
    const p = options.profile;
    this.#hooked = [...p.filters, ...p.scorers.map((s) => s.scorer), p.picker].filter(
      (x) => x.preRequest !== undefined,
    );
  }

  /**
   * One cycle. `view` is the read model as this request sees it (cache-view's `lookupFor`: merged with the
   * shared index); absent = the scheduler's own view.
   */
  schedule(request: SchedulingRequest, view?: PrefixLookup): SchedulingResult {
    const cycle = new SchedulingCycle(request, view ?? this.#lookup);
    let candidates = this.#endpoints.candidates(request.subsetHint ?? null);
    if (candidates.length === 0) return { kind: "no-endpoints" };

    for (const filter of this.profile.filters) {
      candidates = filter.filter(cycle, candidates);
      if (candidates.length === 0) return { kind: "all-filtered", filteredBy: filter.name };
    }

    const n = candidates.length;
    const totals = new Float64Array(n);
    const perScorer: Float64Array[] = [];
    for (const { scorer, weight } of this.profile.scorers) {
      const raw = scorer.score(cycle, candidates);
      const clamped = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        clamped[i] = clamp01(raw[i] ?? 0);
        totals[i] = (totals[i] ?? 0) + weight * (clamped[i] ?? 0);
      }
      perScorer.push(clamped);
    }

    const scored: ScoredEndpoint[] = candidates.map((endpoint, i) => ({ endpoint, total: totals[i] ?? 0 }));
    const picker = this.profile.picker;
    const targets = picker.pick(cycle, scored);
    const winner = targets[0];
    if (winner === undefined) return { kind: "all-filtered", filteredBy: picker.name };

    const winnerIndex = candidates.indexOf(winner.endpoint);
    const prefix = cycle.prefixMatch(candidates);
    if (winnerIndex >= 0)
      this.#afterPick(cycle, { endpoint: winner.endpoint, candidates, index: winnerIndex });
    const prefixMatchBlocks = winnerIndex < 0 ? 0 : (prefix.blocks[winnerIndex] ?? 0);
    const estimated = winnerIndex < 0 ? null : estimatedCachedTokens(cycle, winnerIndex);
    return {
      kind: "picked",
      endpoint: winner.endpoint,
      targets: targets.map((t) => t.endpoint),
      prefixMatchBlocks,
      totalBlocks: prefix.totalBlocks,
      cachedTokens: estimated ?? prefixMatchBlocks * (this.#context.blockSize ?? 64),
      scores: this.#report(candidates, totals, perScorer, winnerIndex),
    };
  }

  /** All candidates' scores, the winner first, then by total descending. */
  #report(
    candidates: readonly Endpoint[],
    totals: Float64Array,
    perScorer: Float64Array[],
    winner: number,
  ): EndpointScore[] {
    const names = this.profile.scorers.map((s) => s.scorer.name);
    // Sorting indices by a typed array is far cheaper than sorting row objects (this runs per request).
    const order = Array.from(candidates.keys()).sort((x, y) => (totals[y] ?? 0) - (totals[x] ?? 0));
    if (winner >= 0 && order[0] !== winner) {
      order.splice(order.indexOf(winner), 1);
      order.unshift(winner);
    }
    const rows: EndpointScore[] = new Array(order.length);
    for (let r = 0; r < order.length; r++) {
      const i = order[r] ?? 0;
      const byScorer: Record<string, number> = {};
      for (let k = 0; k < names.length; k++) byScorer[names[k] ?? ""] = perScorer[k]?.[i] ?? 0;
      rows[r] = { address: candidates[i]?.address ?? "", total: totals[i] ?? 0, byScorer };
    }
    return rows;
  }

  /** GIE's PreRequest extension point, then the scheduler-wide onPicked; neither can fail the request. */
  #afterPick(cycle: CycleState, picked: PickedEndpoint): void {
    for (const plugin of this.#hooked) {
      try {
        plugin.preRequest?.(cycle, picked);
      } catch (err) {
        this.#onHookError?.(plugin.name, err);
      }
    }
    if (this.#onPicked === undefined) return;
    try {
      this.#onPicked(cycle, picked);
    } catch (err) {
      this.#onHookError?.("onPicked", err);
    }
  }
}
