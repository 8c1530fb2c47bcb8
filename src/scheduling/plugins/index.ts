// The in-tree plugins, one line each: adding a plugin = its file + a line here. (The one allowed barrel.)
import { PluginRegistry, type PluginFactory } from "../registry.js";
import { freshMetricsFilter } from "./filters/fresh-metrics-filter.js";
import { headerBasedTestingFilter } from "./filters/header-based-testing-filter.js";
import { priorityReserveFilter } from "./filters/priority-reserve-filter.js";
import { tenantKvBudgetFilter } from "./filters/tenant-kv-budget-filter.js";
import { maxScorePicker } from "./pickers/max-score-picker.js";
import { randomPicker } from "./pickers/random-picker.js";
import { weightedRandomPicker } from "./pickers/weighted-random-picker.js";
import { kvCacheUtilizationScorer } from "./scorers/kv-cache-utilization-scorer.js";
import { loraAffinityScorer } from "./scorers/lora-affinity-scorer.js";
import { precisePrefixCacheScorer } from "./scorers/precise-prefix-cache-scorer.js";
import { prefixCacheScorer } from "./scorers/prefix-cache-scorer.js";
import { queueScorer } from "./scorers/queue-scorer.js";
import { runningRequestsSizeScorer } from "./scorers/running-requests-size-scorer.js";
import { sessionAffinityScorer } from "./scorers/session-affinity-scorer.js";
import { ttftCostScorer } from "./scorers/ttft-cost-scorer.js";

export const BUILTIN_PLUGINS: readonly PluginFactory[] = [
  freshMetricsFilter,
  headerBasedTestingFilter,
  tenantKvBudgetFilter,
  priorityReserveFilter,
  precisePrefixCacheScorer,
  prefixCacheScorer,
  ttftCostScorer,
  queueScorer,
  kvCacheUtilizationScorer,
  runningRequestsSizeScorer,
  loraAffinityScorer,
  sessionAffinityScorer,
  maxScorePicker,
  randomPicker,
  weightedRandomPicker,
];

/** A registry holding every in-tree plugin; callers may register more before building profiles. */
export const createPluginRegistry = (): PluginRegistry => new PluginRegistry(BUILTIN_PLUGINS);
