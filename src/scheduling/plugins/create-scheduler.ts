// Builds the configured scheduler: the one place that joins the profile settings, the plugin registry and
// the scheduler core (scheduler.ts itself never imports a plugin). It also wires the scheduler-wide services
// that learn from each pick: the read model's `routed` (speculative prefix entries, cache-view/) and the
// estimated fallback for pods without KV events. (Dispatch credit is the router's: it also needs the response
// path, see routing/director.ts.)
import type { PodAddress } from "../../cache-view/pod-key.js";
import type { PrefixLookup } from "../../cache-view/prefix-lookup.js";
import { EstimatedPrefixIndex, estimatedPrefixParams } from "../estimated/estimated-prefix-index.js";
import { createPluginRegistry } from "./index.js";
import type { PluginRegistry, ProfileSpec } from "../registry.js";
import { Scheduler } from "../scheduler.js";
import type { CycleState, EndpointSource, PickedEndpoint, PluginContext } from "../types.js";

/** The scheduling profile as configured (config/schema.ts `Config["scheduling"]` fits). */
export type SchedulingSettings = ProfileSpec;

export interface SchedulerDeps {
  readonly endpoints: EndpointSource;
  /** The read model's view (cache-view/ `CacheView.local`); null routes on load alone. */
  readonly prefixLookup: PrefixLookup | null;
  /**
   * Told of every pick with the request's view, so what was routed counts as cached (cache-view/
   * `CacheView.routed`); absent = nothing learns from picks but the plugins' own hooks.
   */
  readonly routed?: (view: PrefixLookup, pod: PodAddress, chain: BigUint64Array) => void;
  /** Defaults to Math.random; inject for reproducible tie-breaks. */
  readonly random?: () => number;
  /** Defaults to the in-tree plugins. */
  readonly registry?: PluginRegistry;
  /** vLLM block size (tokenizer.blockSize), or a reading of the learnt one (null = not known yet); default 64. */
  readonly blockSize?: number | (() => number | null);
  /** Monotonic clock in ms; default performance.now (inject for virtual time). */
  readonly now?: () => number;
  /** The precise scorers' fallback for pods without KV events; default: a fresh one (GIE defaults). */
  readonly estimatedFallback?: EstimatedPrefixIndex | null;
  /** Told when a preRequest hook throws (the request is routed regardless). */
  readonly onHookError?: (source: string, err: unknown) => void;
}

/** Throws ConfigError (paths like `scheduling.scorers[1].type`) when the profile names bad plugins. */
export function createScheduler(settings: SchedulingSettings, deps: SchedulerDeps): Scheduler {
  const lookup = deps.prefixLookup;
  const size = deps.blockSize;
  const blockSize = typeof size === "function" ? () => size() ?? 64 : () => size ?? 64;
  const estimatedFallback =
    deps.estimatedFallback !== undefined
      ? deps.estimatedFallback
      : lookup === null
        ? null
        : new EstimatedPrefixIndex(estimatedPrefixParams.parse({}), deps.now);
  const context: PluginContext = {
    random: deps.random ?? Math.random,
    // Read per cycle: a learnt block size becomes known after the scheduler is built.
    get blockSize() {
      return blockSize();
    },
    estimatedFallback,
    ...(deps.now === undefined ? {} : { now: deps.now }),
  };
  const registry = deps.registry ?? createPluginRegistry();
  const profile = registry.buildProfile(settings, context, "scheduling");

  const routed = deps.routed;
  // The request's view (a pod another replica hears from is known through the shared index).
  const onPicked =
    routed === undefined || lookup === null
      ? undefined
      : (cycle: CycleState, picked: PickedEndpoint) =>
          routed(cycle.prefixLookup ?? lookup, picked.endpoint, cycle.request.blockHashes);
  return new Scheduler({
    profile,
    endpoints: deps.endpoints,
    context,
    lookup,
    ...(onPicked === undefined ? {} : { onPicked }),
    ...(deps.onHookError === undefined ? {} : { onHookError: deps.onHookError }),
  });
}
