// The routing policies compared by the benchmark. All but random, round-robin and the ideal bound run through
// kvpick's real scheduler (createScheduler + the in-tree plugins, the same filter → scorers → picker path and
// the same post-pick services as production): load only, approximate prefix (the production
// `prefix-cache-scorer`), the GIE-weighted precise baseline and its ablations, and kvpick's default profile.
// The ideal bound reads the engines' exact state (no scrape lag) and runs on pods that already hold every
// shared prefix.
import { parseConfig } from "../../src/config/load.js";
import type { ConfigInput } from "../../src/config/schema.js";
import type { DispatchTicket } from "../../src/endpoints/dispatch-ledger.js";
import type { EndpointStore } from "../../src/endpoints/endpoint-store.js";
import type { BlockIndex } from "../../src/kv-index/block-index.js";
import { createScheduler } from "../../src/scheduling/plugins/create-scheduler.js";
import type { Engine } from "../../src/sim/engine.js";
import type { Rng } from "../../src/sim/random.js";

export const POLICY_NAMES = [
  "random",
  "round-robin",
  "load",
  "approximate-w1",
  "approximate",
  "precise",
  "precise-speculative",
  "precise-credit",
  "cost",
  "kvpick",
  "kvpick-blind",
  "ideal",
] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];

export const POLICY_LABELS: Record<PolicyName, string> = {
  random: "random",
  "round-robin": "round-robin",
  load: "load only (queue 2 + kv 2)",
  "approximate-w1": "approximate prefix (weights 1/1/1)",
  approximate: "approximate prefix (GIE-style 3/2/2)",
  precise: "GIE-weighted precise (3/2/2)",
  "precise-speculative": "precise 3/2/2 + speculative entries",
  "precise-credit": "precise 3/2/2 + dispatch credit",
  cost: "TTFT cost scorer alone",
  kvpick: "kvpick default",
  "kvpick-blind": "kvpick default, pods publish no KV events",
  ideal: "ideal bound",
};

/** What a policy sees of one request. */
export interface BenchRequest {
  readonly id: string;
  readonly model: string;
  /** vLLM block hashes of the prompt's full blocks (kvpick's BlockHasher, the pods' seed). */
  readonly promptChain: BigUint64Array;
  readonly promptTokens: number;
  /** The chat messages as JSON, as the estimated scorer reads a chat request (built lazily). */
  text(): string;
  /** Request headers the scheduler sees (the tenant's fairness id); absent = none. */
  readonly headers?: ReadonlyMap<string, string>;
  /** Flow control's admitted priority (SchedulingRequest.priority); absent = flow control off. */
  readonly priority?: number;
}

export interface PolicyContext {
  readonly pods: number;
  readonly engines: readonly Engine[];
  /** The pool as kvpick's store holds it: scraped load (every scrape interval) plus dispatch credit. */
  readonly endpoints: EndpointStore;
  readonly rng: Rng;
  /** The KV index, fed by the pods' events for the policies that need them (empty otherwise). */
  readonly index: BlockIndex;
  readonly blockSize: number;
  /** Virtual time in ms (speculative TTLs). */
  readonly now: () => number;
}

export interface Routed {
  /** Pod number 0..pods−1. */
  readonly pod: number;
  /** Dispatch credit to settle at the first token and at the end (as the director does), or null. */
  readonly ticket: DispatchTicket | null;
}

export interface Policy {
  readonly name: PolicyName;
  route(req: BenchRequest): Routed;
}

/** Whether the policy needs KV events delivered to an index. */
export const needsEvents = (name: PolicyName): boolean =>
  name.startsWith("precise") || name === "cost" || name === "kvpick";

/**
 * Whether the policy's scheduler reads the KV index. `kvpick-blind` reads one that never hears from any pod,
 * as `kvpick serve` does when vLLM publishes nothing: every pod falls back to estimated prefix matching.
 */
export const readsIndex = (name: PolicyName): boolean => needsEvents(name) || name === "kvpick-blind";

/** Candidates' pod numbers: the benchmark names endpoints 10.0.0.<pod+1>:8000. */
export const podOfAddress = (address: string): number =>
  Number(address.slice(address.lastIndexOf(".") + 1, address.indexOf(":"))) - 1;

const GIE_PRECISE = [
  { type: "precise-prefix-cache-scorer", weight: 3, parameters: { estimatedFallback: false } },
  { type: "queue-scorer", weight: 2 },
  { type: "kv-cache-utilization-scorer", weight: 2 },
];
/** GIE's approximate scorer with the parameters of its v1.0 default (no auto-tuning): 16-token blocks. */
const APPROX = {
  autoTune: false,
  blockSizeTokens: 16,
  maxPrefixBlocksToMatch: 256,
  lruCapacityPerServer: 31_250,
};
/** The field's behaviour: none of kvpick's post-pick services. */
const FIELD = { speculativeTtlMs: 0, dispatchCredit: false };

/** The scheduling configuration of each scheduler-backed policy (kvpick = kvpick's own defaults). */
export const POLICY_CONFIGS: Partial<Record<PolicyName, ConfigInput["scheduling"]>> = {
  load: {
    ...FIELD,
    scorers: [
      { type: "queue-scorer", weight: 2 },
      { type: "kv-cache-utilization-scorer", weight: 2 },
    ],
  },
  "approximate-w1": {
    ...FIELD,
    scorers: [
      { type: "prefix-cache-scorer", weight: 1, parameters: APPROX },
      { type: "queue-scorer", weight: 1 },
      { type: "kv-cache-utilization-scorer", weight: 1 },
    ],
  },
  approximate: {
    ...FIELD,
    scorers: [
      { type: "prefix-cache-scorer", weight: 3, parameters: APPROX },
      { type: "queue-scorer", weight: 2 },
      { type: "kv-cache-utilization-scorer", weight: 2 },
    ],
  },
  precise: { ...FIELD, scorers: GIE_PRECISE },
  "precise-speculative": { ...FIELD, speculativeTtlMs: 2000, scorers: GIE_PRECISE },
  "precise-credit": { ...FIELD, dispatchCredit: true, scorers: GIE_PRECISE },
  cost: { ...FIELD, scorers: [{ type: "ttft-cost-scorer", weight: 1 }] },
  kvpick: {},
  "kvpick-blind": {},
};

export function createPolicy(name: PolicyName, ctx: PolicyContext): Policy {
  switch (name) {
    case "random":
      return { name, route: () => ({ pod: Math.floor(ctx.rng() * ctx.pods), ticket: null }) };
    case "round-robin": {
      let next = 0;
      return {
        name,
        route: () => {
          const pod = next;
          next = (next + 1) % ctx.pods;
          return { pod, ticket: null };
        },
      };
    }
    case "ideal":
      return { name, route: () => ({ pod: leastLoaded(ctx), ticket: null }) };
    default:
      return schedulerPolicy(name, ctx, POLICY_CONFIGS[name] ?? {});
  }
}

/** Fewest requests in the engine (waiting + running), then least KV in use, ties at random. */
function leastLoaded(ctx: PolicyContext): number {
  let best = -1;
  let bestLoad = Number.POSITIVE_INFINITY;
  let bestKv = Number.POSITIVE_INFINITY;
  let ties = 0;
  ctx.engines.forEach((e, i) => {
    const load = e.numWaiting + e.numRunning;
    const kv = e.blocks.usage();
    if (load < bestLoad || (load === bestLoad && kv < bestKv)) {
      best = i;
      bestLoad = load;
      bestKv = kv;
      ties = 1;
    } else if (load === bestLoad && kv === bestKv && ctx.rng() * ++ties < 1) best = i;
  });
  return best;
}

function schedulerPolicy(
  name: PolicyName,
  ctx: PolicyContext,
  scheduling: ConfigInput["scheduling"],
): Policy {
  const config = parseConfig({ tokenizer: { blockSize: ctx.blockSize }, scheduling }).scheduling;
  const scheduler = createScheduler(config, {
    endpoints: ctx.endpoints,
    prefixLookup: readsIndex(name) ? ctx.index : null,
    random: ctx.rng,
    blockSize: ctx.blockSize,
    now: ctx.now,
  });
  const headers = new Map<string, string>();
  return {
    name,
    route(req) {
      let text: string | null = null;
      const result = scheduler.schedule({
        requestId: req.id,
        model: req.model,
        targetModel: req.model,
        blockHashes: req.promptChain,
        promptTokens: req.promptTokens,
        promptText: () => {
          text ??= req.text();
          return text;
        },
        headers: req.headers ?? headers,
        ...(req.priority === undefined ? {} : { priority: req.priority }),
      });
      if (result.kind !== "picked") throw new Error(`${name}: scheduler returned ${result.kind}`);
      const address = result.endpoint.address;
      // As the director: the uncached part of the prompt is what the pod will compute.
      const cached = result.cachedTokens ?? result.prefixMatchBlocks * ctx.blockSize;
      const ticket = config.dispatchCredit
        ? ctx.endpoints.dispatch(address, req.promptTokens - cached)
        : null;
      return { pod: podOfAddress(address), ticket };
    },
  };
}
