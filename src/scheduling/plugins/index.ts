// The in-tree plugins, one line each: adding a plugin = its file + a line here. (The one allowed barrel.)
import { PluginRegistry, type PluginFactory } from "../registry.js";
import { freshMetricsFilter } from "./filters/fresh-metrics-filter.js";
import { maxScorePicker } from "./pickers/max-score-picker.js";
import { kvCacheUtilizationScorer } from "./scorers/kv-cache-utilization-scorer.js";
import { precisePrefixCacheScorer } from "./scorers/precise-prefix-cache-scorer.js";
import { queueScorer } from "./scorers/queue-scorer.js";

export const BUILTIN_PLUGINS: readonly PluginFactory[] = [
  freshMetricsFilter,
  precisePrefixCacheScorer,
  queueScorer,
  kvCacheUtilizationScorer,
  maxScorePicker,
];

/** A registry holding every in-tree plugin; callers may register more before building profiles. */
export const createPluginRegistry = (): PluginRegistry => new PluginRegistry(BUILTIN_PLUGINS);
