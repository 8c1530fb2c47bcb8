// Builds the configured scheduler: the one place that joins config, the plugin registry and the scheduler
// core (scheduler.ts itself never imports a plugin).
import type { Config } from "../config/schema.js";
import { createPluginRegistry } from "./plugins/index.js";
import type { PluginRegistry } from "./registry.js";
import { Scheduler } from "./scheduler.js";
import type { EndpointSource, Plugin, PrefixLookup } from "./types.js";

export interface SchedulerDeps {
  readonly endpoints: EndpointSource;
  /** The KV index; null routes on load alone. */
  readonly prefixLookup: PrefixLookup | null;
  /** Defaults to Math.random; inject for reproducible tie-breaks. */
  readonly random?: () => number;
  /** Defaults to the in-tree plugins. */
  readonly registry?: PluginRegistry;
  readonly observePlugin?: (plugin: Plugin, seconds: number) => void;
}

/** Throws ConfigError (paths like `scheduling.scorers[1].type`) when the profile names bad plugins. */
export function createScheduler(config: Config["scheduling"], deps: SchedulerDeps): Scheduler {
  const context = { prefixLookup: deps.prefixLookup, random: deps.random ?? Math.random };
  const registry = deps.registry ?? createPluginRegistry();
  const profile = registry.buildProfile(config, context, "scheduling");
  return new Scheduler({
    profile,
    endpoints: deps.endpoints,
    context,
    ...(deps.observePlugin === undefined ? {} : { observePlugin: deps.observePlugin }),
  });
}
