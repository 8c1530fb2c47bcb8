// The routing policies compared by the benchmark. Four of them run through kvpick's real scheduler
// (createScheduler + the in-tree plugins, the same filter → weighted scorers → max-score picker path as
// production): load only, approximate prefix (GIE-style scorer plugged into the registry), and kvpick precise
// (the default profile over a real BlockIndex). Random and round-robin need no scheduler. The ideal bound
// reads the engines' exact state (no scrape lag) and runs on pods that already hold every shared prefix.
import { parseConfig } from "../../src/config/load.js";
import type { Engine } from "../../src/sim/engine.js";
import type { Rng } from "../../src/sim/random.js";
import type { BlockIndex } from "../../src/kv-index/block-index.js";
import { createScheduler } from "../../src/scheduling/create-scheduler.js";
import { createPluginRegistry } from "../../src/scheduling/plugins/index.js";
import type { EndpointSource } from "../../src/scheduling/types.js";
import {
  type ApproxRequest,
  approxBlockKeys,
  approxPrefixScorerPlugin,
  podOfAddress,
  RoutedBlockLru,
} from "./approx-prefix.js";

export const POLICY_NAMES = [
  "random",
  "round-robin",
  "load",
  "approximate-w1",
  "approximate",
  "precise",
  "ideal",
] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];

export const POLICY_LABELS: Record<PolicyName, string> = {
  random: "random",
  "round-robin": "round-robin",
  load: "load only (queue 2 + kv 2)",
  "approximate-w1": "approximate prefix (weights 1/1/1)",
  approximate: "approximate prefix (GIE-style 3/2/2)",
  precise: "kvpick precise (default profile)",
  ideal: "ideal bound",
};

/** What a policy sees of one request. */
export interface BenchRequest {
  readonly id: string;
  readonly model: string;
  /** vLLM block hashes of the prompt's full blocks (kvpick's BlockHasher, the pods' seed). */
  readonly promptChain: BigUint64Array;
  /** The request body as the gateway would see it (only the approximate policy asks; built lazily). */
  text(): string;
}

export interface PolicyContext {
  readonly pods: number;
  readonly engines: readonly Engine[];
  /** Endpoints with load metrics as kvpick's scraper would last have read them. */
  readonly endpoints: EndpointSource;
  readonly rng: Rng;
  /** The KV index fed by the pods' events (precise only). */
  readonly index: BlockIndex | null;
}

export interface Policy {
  readonly name: PolicyName;
  /** Pod number 0..pods−1. */
  route(req: BenchRequest): number;
}

/** Whether the policy needs KV events delivered to an index. */
export const needsEvents = (name: PolicyName): boolean => name === "precise";

export function createPolicy(name: PolicyName, ctx: PolicyContext): Policy {
  switch (name) {
    case "random":
      return { name, route: () => Math.floor(ctx.rng() * ctx.pods) };
    case "round-robin": {
      let next = 0;
      return {
        name,
        route: () => {
          const p = next;
          next = (next + 1) % ctx.pods;
          return p;
        },
      };
    }
    case "ideal":
      return { name, route: () => leastLoaded(ctx) };
    case "load":
      return schedulerPolicy(name, ctx, [
        { type: "queue-scorer", weight: 2 },
        { type: "kv-cache-utilization-scorer", weight: 2 },
      ]);
    case "precise":
      return schedulerPolicy(name, ctx, null);
    case "approximate":
      return approximatePolicy(ctx, name, [3, 2, 2]);
    case "approximate-w1":
      return approximatePolicy(ctx, name, [1, 1, 1]);
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

type ScorerRef = { type: string; weight: number };

function schedulerPolicy(name: PolicyName, ctx: PolicyContext, scorers: ScorerRef[] | null): Policy {
  // null = kvpick's default profile exactly as `kvpick serve` builds it.
  const config = parseConfig(scorers === null ? {} : { scheduling: { scorers } }).scheduling;
  const scheduler = createScheduler(config, {
    endpoints: ctx.endpoints,
    prefixLookup: scorers === null ? ctx.index : null,
    random: ctx.rng,
  });
  const headers = new Map<string, string>();
  return {
    name,
    route(req) {
      const result = scheduler.schedule({
        requestId: req.id,
        model: req.model,
        targetModel: req.model,
        blockHashes: req.promptChain,
        headers,
      });
      if (result.kind !== "picked") throw new Error(`${name}: scheduler returned ${result.kind}`);
      return podOfAddress(result.endpoint.address);
    },
  };
}

function approximatePolicy(ctx: PolicyContext, name: PolicyName, [wp, wq, wk]: number[]): Policy {
  const lru = new RoutedBlockLru(ctx.pods);
  const registry = createPluginRegistry();
  registry.register(approxPrefixScorerPlugin(lru));
  const config = parseConfig({
    scheduling: {
      scorers: [
        { type: "approx-prefix-cache-scorer", weight: wp },
        { type: "queue-scorer", weight: wq },
        { type: "kv-cache-utilization-scorer", weight: wk },
      ],
    },
  }).scheduling;
  const scheduler = createScheduler(config, {
    endpoints: ctx.endpoints,
    prefixLookup: null,
    random: ctx.rng,
    registry,
  });
  const headers = new Map<string, string>();
  return {
    name,
    route(req) {
      const approxKeys = approxBlockKeys(req.text(), req.model);
      const request: ApproxRequest = {
        requestId: req.id,
        model: req.model,
        targetModel: req.model,
        blockHashes: req.promptChain,
        headers,
        approxKeys,
      };
      const result = scheduler.schedule(request);
      if (result.kind !== "picked") throw new Error(`approximate: scheduler returned ${result.kind}`);
      const pod = podOfAddress(result.endpoint.address);
      lru.add(pod, approxKeys); // GIE's PreRequest: remember what was routed where
      return pod;
    },
  };
}
