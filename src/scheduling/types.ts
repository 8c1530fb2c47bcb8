// Scheduling contracts: what a request looks like to the scheduler, what filters, scorers and pickers
// promise, and the read-only services they may use. Plugins depend on this file only (plus the endpoint
// types and the read model's contract, cache-view/prefix-lookup.ts); the scheduler never imports a plugin. Shaped after the GIE EPP framework so its configuration
// vocabulary (filters → weighted scorers → picker) maps one to one.
import type { PrefixLookup } from "../cache-view/prefix-lookup.js";
import type { Endpoint } from "../endpoints/endpoint.js";

export type { Endpoint };

/** One request, as produced by the director after parsing, tokenizing and hashing. Never mutated by plugins. */
export interface SchedulingRequest {
  readonly requestId: string;
  /** Model the client asked for. */
  readonly model: string;
  /** Model after any rewrite; the KV events of this model are the ones that count. */
  readonly targetModel: string;
  /** vLLM block hashes of the prompt's full blocks, block 0 first (empty when shorter than one block). */
  readonly blockHashes: BigUint64Array;
  /** Request headers, lower-case names (e.g. `test-epp-endpoint-selection` for the conformance filter). */
  readonly headers: ReadonlyMap<string, string>;
  /** Gateway subset hint (`x-gateway-destination-endpoint-subset`); null/absent = the whole pool. */
  readonly subsetHint?: readonly string[] | null;
  /**
   * The LoRA adapter the request names, for `lora-affinity-scorer`: null = the base model (no adapter);
   * absent = unknown (the scorer then treats `targetModel` as the adapter name, as GIE does).
   */
  readonly loraAdapter?: string | null;
  /** Prompt tokens, the partial last block included; absent = blockHashes.length × the block size. */
  readonly promptTokens?: number;
  /**
   * The prompt as text, for estimated (character-block) prefix matching as GIE does it: the chat messages as
   * JSON, or the completion prompt. Computed on the first call (the caller caches it), so a profile without
   * an estimated scorer never pays for it; absent when the request has no prompt.
   */
  readonly promptText?: () => string;
  /**
   * The same prompt as a value, preferred over promptText when given: a string is the text itself, any
   * other value stands for its JSON text (chat messages). Lets the estimated keys walk only the part of the
   * prompt they cover instead of serialising a whole body.
   */
  readonly promptValue?: () => unknown;
  /** vLLM `cache_salt`: seeds the estimated prefix keys, as it seeds vLLM's block 0. */
  readonly cacheSalt?: string | null;
  /** The priority flow control admitted the request with (its objective's); absent when flow control is off. */
  readonly priority?: number;
  /**
   * Values that depend only on the request body's bytes (and the key's own parameters), kept with the body
   * across requests with the same bytes (routing's request memo); absent when the body is not kept.
   */
  readonly bodyDerived?: BodyDerived;
}

/** A per-body store (routing/prompt-memo.ts implements it). Values are shared: never mutate one. */
export interface BodyDerived {
  get(key: string): unknown;
  /** `bytes`: what keeping `value` costs (the store is bounded in bytes; it may decline to keep it). */
  set(key: string, value: unknown, bytes: number): void;
}

/** Longest cached prefix per candidate, aligned with the candidate array it was computed for. */
export interface PrefixMatch {
  /** Blocks in the request (the denominator of the prefix score). */
  readonly totalBlocks: number;
  /** Consecutive blocks from block 0 cached on candidates[i]. */
  readonly blocks: Uint32Array;
  /** The same blocks weighted by medium (GPU 1.0, CPU 0.8) and by the pod's credit factor (degraded < 1). */
  readonly weighted: Float64Array;
}

/**
 * Per-request state shared by the plugins of one scheduling cycle, so expensive facts are computed once
 * (GIE's CycleState). Lives for one `schedule()` call; synchronous, so no re-entrancy concerns.
 */
export interface CycleState {
  readonly request: SchedulingRequest;
  /**
   * The read model as this request sees it (cache-view/: the local view, merged with the shared index's
   * answer when configured); null without an index. The one place plugins read the lookup from.
   */
  readonly prefixLookup: PrefixLookup | null;
  /** The prefix match for exactly this candidate array (memoised by identity); all zeros without an index. */
  prefixMatch(candidates: readonly Endpoint[]): PrefixMatch;
  /** A general memo for plugins' own per-request facts; `key` should be the plugin's type name. */
  memo<T>(key: string, compute: () => T): T;
}

/**
 * Estimated prefix matching (prompt-text blocks against what kvpick routed to each endpoint) for endpoints the
 * KV index has never heard of: the precise scorers' per-pod fallback. One instance per scheduler.
 */
export interface EstimatedFallback {
  /**
   * Key blocks of the request (`total`), consecutive ones recorded per candidate (`matched[i]`), and the
   * tokens one key block stands for (`blockTokens`).
   */
  match(
    cycle: CycleState,
    candidates: readonly Endpoint[],
  ): { total: number; matched: Uint32Array; blockTokens: number };
  /** The request's keys now count as cached on `endpoint`. */
  record(cycle: CycleState, candidates: readonly Endpoint[], endpoint: Endpoint): void;
  /** Drops what was learnt about an endpoint (its KV events arrive now). */
  forget(address: string): void;
}

/** Shared, read-only services a plugin factory may capture. */
export interface PluginContext {
  /** Estimated matching for endpoints without KV events; absent = such endpoints score no cache. */
  readonly estimatedFallback?: EstimatedFallback | null;
  /** Uniform in [0, 1); injectable so tie-breaks are testable. */
  readonly random: () => number;
  /**
   * vLLM block size in tokens (`tokenizer.blockSize`, or learnt from the pods: read it per cycle, it may
   * become known after startup), to turn matched blocks into tokens; default 64.
   */
  readonly blockSize?: number;
  /** Monotonic clock in ms (expiries, pruning); default `performance.now`. Injectable for virtual time. */
  readonly now?: () => number;
}

/** The outcome of the picker as post-pick hooks see it. */
export interface PickedEndpoint {
  /** The chosen endpoint (the first target). */
  readonly endpoint: Endpoint;
  /** The candidates that were scored; `cycle.prefixMatch(candidates)` is memoised for exactly this array. */
  readonly candidates: readonly Endpoint[];
  /** Position of `endpoint` in `candidates`. */
  readonly index: number;
}

interface PluginBase {
  /** Registered type name, e.g. `queue-scorer`. */
  readonly type: string;
  /** Instance name from config (defaults to the type); keys `byScorer` in results. */
  readonly name: string;
  /**
   * GIE's PreRequest: called once per cycle after the picker chose (the director always sends a picked
   * request), for state that learns from kvpick's own decisions (the estimated prefix LRU, running averages).
   * Synchronous and cheap; a throw is caught by the scheduler and never fails the request.
   */
  preRequest?(cycle: CycleState, picked: PickedEndpoint): void;
}

/** Narrows the candidates. Returns a subset (may be the same array); must not mutate its input. */
export interface Filter extends PluginBase {
  readonly role: "filter";
  filter(cycle: CycleState, candidates: readonly Endpoint[]): readonly Endpoint[];
}

/**
 * Scores every candidate: returns one number per candidate, aligned by index, meant to lie in [0, 1]
 * (higher is better). The scheduler clamps to [0, 1] and treats NaN as 0, so a buggy scorer cannot dominate.
 * Must handle an empty candidate list and must not mutate its input.
 */
export interface Scorer extends PluginBase {
  readonly role: "scorer";
  score(cycle: CycleState, candidates: readonly Endpoint[]): ArrayLike<number>;
}

/** A candidate with its weighted total (Σ weight × clamped score) after scoring. */
export interface ScoredEndpoint {
  readonly endpoint: Endpoint;
  readonly total: number;
}

/** Chooses targets from the scored candidates: best first, at least one when `scored` is non-empty. */
export interface Picker extends PluginBase {
  readonly role: "picker";
  pick(cycle: CycleState, scored: readonly ScoredEndpoint[]): readonly ScoredEndpoint[];
}

export type Plugin = Filter | Scorer | Picker;
export type PluginRole = Plugin["role"];

/** One configured profile: run in this order. Weights are ≥ 0 and not normalised (as GIE). */
export interface SchedulingProfile {
  readonly name: string;
  readonly filters: readonly Filter[];
  readonly scorers: readonly { readonly scorer: Scorer; readonly weight: number }[];
  readonly picker: Picker;
}

/** One candidate's scores in a result. `byScorer` holds clamped, unweighted scores keyed by scorer name. */
export interface EndpointScore {
  readonly address: string;
  readonly total: number;
  readonly byScorer: Readonly<Record<string, number>>;
}

/**
 * The outcome of one scheduling cycle. Expected failures are values, mapped to HTTP by the caller:
 * `no-endpoints` → 503 (pool empty, none ready, or nothing in the subset); `all-filtered` → 429.
 */
export type SchedulingResult =
  | {
      readonly kind: "picked";
      readonly endpoint: Endpoint;
      /** Every target the picker returned, best first (`endpoint` is targets[0]); for fallback lists. */
      readonly targets: readonly Endpoint[];
      /** Cached prefix of the request on `endpoint`, in blocks, and the request's block count. */
      readonly prefixMatchBlocks: number;
      readonly totalBlocks: number;
      /**
       * Prompt tokens expected cached on `endpoint`: prefixMatchBlocks × the block size, or — for an endpoint
       * without KV events whose estimate a scorer used — the estimated prefix. Absent = prefixMatchBlocks.
       */
      readonly cachedTokens?: number;
      /** Every scored candidate, picked endpoint first, the rest by total descending. */
      readonly scores: readonly EndpointScore[];
    }
  | { readonly kind: "no-endpoints" }
  | { readonly kind: "all-filtered"; readonly filteredBy: string };

/** The scheduler's source of candidates (endpoints/endpoint-store.ts implements it). */
export interface EndpointSource {
  /** Ready endpoints, restricted by the subset hint when one is given (an empty hint selects none). */
  candidates(subset?: readonly string[] | null): readonly Endpoint[];
}
