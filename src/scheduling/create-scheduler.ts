// Builds the configured scheduler: the one place that joins config, the plugin registry and the scheduler
// core (scheduler.ts itself never imports a plugin). It also wires the scheduler-wide services that learn
// from each pick: speculative prefix entries over the KV index and the estimated fallback for pods without KV
// events. (Dispatch credit is the router's: it also needs the response path, see routing/director.ts.)
import type { Config } from "../config/schema.js";
import { EstimatedPrefixIndex, estimatedPrefixParams } from "./estimated/estimated-prefix-index.js";
import { createPluginRegistry } from "./plugins/index.js";
import type { PluginRegistry } from "./registry.js";
import { Scheduler } from "./scheduler.js";
import { SpeculativePrefixLookup } from "./speculative/speculative-prefix-lookup.js";
import {
  type CycleState,
  type EndpointSource,
  type PickedEndpoint,
  type Plugin,
  type PluginContext,
  type PrefixLookup,
  isEventDriven,
} from "./types.js";

export interface SchedulerDeps {
  readonly endpoints: EndpointSource;
  /** The KV index; null routes on load alone. */
  readonly prefixLookup: PrefixLookup | null;
  /** Defaults to Math.random; inject for reproducible tie-breaks. */
  readonly random?: () => number;
  /** Defaults to the in-tree plugins. */
  readonly registry?: PluginRegistry;
  readonly observePlugin?: (plugin: Plugin, seconds: number) => void;
  /** vLLM block size (tokenizer.blockSize), or a reading of the learnt one (null = not known yet); default 64. */
  readonly blockSize?: number | (() => number | null);
  /** Monotonic clock in ms; default performance.now (inject for virtual time). */
  readonly now?: () => number;
  /** Speculative entries over `prefixLookup`; default: built from config (pass one to read its stats). */
  readonly speculative?: SpeculativePrefixLookup | null;
  /** The precise scorers' fallback for pods without KV events; default: a fresh one (GIE defaults). */
  readonly estimatedFallback?: EstimatedPrefixIndex | null;
  /** Told when a preRequest hook throws (the request is routed regardless). */
  readonly onHookError?: (source: string, err: unknown) => void;
}

/** The speculative layer the config asks for over `lookup`, or null (off, or no index). */
export function speculativeLookupFor(
  config: Config["scheduling"],
  lookup: PrefixLookup | null,
  now?: () => number,
): SpeculativePrefixLookup | null {
  if (lookup === null || config.speculativeTtlMs === 0) return null;
  return new SpeculativePrefixLookup(lookup, {
    ttlMs: config.speculativeTtlMs,
    maxEntries: config.speculativeMaxEntries,
    ...(now === undefined ? {} : { now }),
  });
}

/** Throws ConfigError (paths like `scheduling.scorers[1].type`) when the profile names bad plugins. */
export function createScheduler(config: Config["scheduling"], deps: SchedulerDeps): Scheduler {
  const speculative =
    deps.speculative !== undefined
      ? deps.speculative
      : speculativeLookupFor(config, deps.prefixLookup, deps.now);
  const lookup: PrefixLookup | null = speculative ?? deps.prefixLookup;
  const size = deps.blockSize;
  const blockSize = typeof size === "function" ? () => size() ?? 64 : () => size ?? 64;
  const estimatedFallback =
    deps.estimatedFallback !== undefined
      ? deps.estimatedFallback
      : lookup === null
        ? null
        : new EstimatedPrefixIndex(estimatedPrefixParams.parse({}), deps.now);
  const context: PluginContext = {
    prefixLookup: lookup,
    random: deps.random ?? Math.random,
    // Read per cycle: a learnt block size becomes known after the scheduler is built.
    get blockSize() {
      return blockSize();
    },
    estimatedFallback,
    ...(deps.now === undefined ? {} : { now: deps.now }),
  };
  const registry = deps.registry ?? createPluginRegistry();
  const profile = registry.buildProfile(config, context, "scheduling");

  const onPicked = (cycle: CycleState, picked: PickedEndpoint) => {
    const e = picked.endpoint;
    const chain = cycle.request.blockHashes;
    if (speculative !== null && chain.length > 0) {
      // The index's id for the pod, as the cycle looks it up (the request's view: a pod another replica hears
      // from is known through the shared index); pods that never published get no entries (the estimated
      // fallback covers them), whatever they hold now.
      const known = cycle.prefixLookup ?? speculative;
      const id = isEventDriven(known, e.address) ? e.address : isEventDriven(known, e.ip) ? e.ip : null;
      if (id !== null) speculative.record(id, chain);
    }
  };
  return new Scheduler({
    profile,
    endpoints: deps.endpoints,
    context,
    ...(deps.observePlugin === undefined ? {} : { observePlugin: deps.observePlugin }),
    ...(speculative === null ? {} : { onPicked }),
    ...(deps.onHookError === undefined ? {} : { onHookError: deps.onHookError }),
  });
}
