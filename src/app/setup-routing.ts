// Composition-root section "the read path": tokenize → hash → (flow control) → schedule, assembled into the
// Director that ext_proc calls. Only construction from configuration: behaviour lives in tokenization/,
// kv-index/, scheduling/, flow-control/ and routing/.
import type { CacheView } from "../cache-view/cache-view.js";
import type { Config } from "../config/schema.js";
import type { EndpointStore } from "../endpoints/endpoint-store.js";
import { FlowController } from "../flow-control/flow-controller.js";
import { ObjectivePriorities } from "../flow-control/objective-priorities.js";
import type { LearntBlockSize } from "../kv-index/learnt-block-size.js";
import { RequestHasher, requestKeyScheme } from "../kv-index/request-key-scheme.js";
import { FlowControlMetrics } from "../observability/flow-control-metrics.js";
import { watchDispatch } from "../observability/pool-metrics.js";
import { watchEstimatedFallback } from "../observability/index-metrics.js";
import { type Logger, RateLimitedLog } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { RouteMetrics, watchRequestMemo } from "../observability/route-metrics.js";
import type { RequestTracerImpl } from "../observability/tracing.js";
import { Director, type PromptTokenizer } from "../routing/director.js";
import { LoraAdapters } from "../routing/lora-adapters.js";
import { createScheduler } from "../scheduling/plugins/create-scheduler.js";
import {
  EstimatedPrefixIndex,
  estimatedPrefixParams,
} from "../scheduling/estimated/estimated-prefix-index.js";
import { TokenizationService } from "../tokenization/tokenization-service.js";

export interface Routing {
  readonly director: Director;
  readonly tokenizer: TokenizationService;
  /** Null unless flowControl.enabled. */
  readonly flowControl: FlowController | null;
  readonly priorities: ObjectivePriorities;
}

export function setupRouting(
  config: Config,
  o: {
    logger: Logger;
    metrics: Metrics;
    endpoints: EndpointStore;
    cacheView: CacheView;
    blockSizes: LearntBlockSize;
    tracer: RequestTracerImpl;
    /** Models the pods' KV-event topics name (a source of served model names for metric labels). */
    announcesModel: (model: string) => boolean;
    wrapTokenizer?: ((tokenizer: PromptTokenizer) => PromptTokenizer) | undefined;
  },
): Routing {
  const { logger, metrics, endpoints } = o;
  const tokenizer = new TokenizationService({
    config: config.tokenizer,
    logger,
    metrics: metrics.tokenization,
  });
  // kvpick's own key scheme: the pods' when a seed is configured (keys engine/auto), else its own token chain.
  const keyScheme = requestKeyScheme({ ...config.tokenizer, keys: config.kvEvents.keys });
  const hasher = new RequestHasher(keyScheme, o.blockSizes, config.tokenizer.hashMemoBlocks);
  // The estimated fallback for pods without KV events: built here so its size reaches /metrics.
  const estimatedFallback = new EstimatedPrefixIndex(estimatedPrefixParams.parse({}));
  watchEstimatedFallback(metrics.registry, estimatedFallback);
  const hookLog = new RateLimitedLog(30_000);
  const scheduler = createScheduler(config.scheduling, {
    endpoints,
    prefixLookup: o.cacheView.local,
    routed: o.cacheView.routed,
    blockSize: () => o.blockSizes.value,
    estimatedFallback,
    onHookError: (source, err) => {
      if (hookLog.admit(source) >= 0)
        logger.error(
          { plugin: source, err: err instanceof Error ? err.message : String(err) },
          "post-pick hook failed",
        );
    },
  });
  if (config.scheduling.dispatchCredit) watchDispatch(metrics.registry, endpoints);
  // Model label values (label-bounds.ts): configured models and adapters, models the pods' KV-event topics
  // name or their load gauges carry (`model_name`), adapters the pods report in vllm:lora_requests_info;
  // every other client-chosen name is "other".
  const loras = new LoraAdapters(config.tokenizer, endpoints);
  metrics.servedModels({
    serves: (model) =>
      Object.hasOwn(config.tokenizer.models, model) ||
      o.announcesModel(model) ||
      endpoints.servesModel(model) ||
      loras.resolve(model).adapter != null,
  });
  // Flow control (flowControl.enabled): admission before scheduling; its saturation reading needs the
  // dispatch credit, so the ledger is fed whenever it is on.
  const fc = config.flowControl;
  const priorities = new ObjectivePriorities(fc.objectives);
  const flowControl = fc.enabled
    ? new FlowController({
        settings: fc,
        capacity: { candidates: () => endpoints.candidates() },
        priorityOf: (name) => priorities.priorityOf(name),
        recorder: new FlowControlMetrics(metrics.registry, config.pool.name ?? "static"),
        logger,
      })
    : null;
  const director = new Director({
    tokenizer: o.wrapTokenizer?.(tokenizer) ?? tokenizer,
    hasher,
    scheduler,
    endpoints,
    logger,
    recorder: new RouteMetrics(metrics),
    emitEndpointScores: config.server.emitEndpointScores,
    cache: o.cacheView,
    loras,
    dispatch: config.scheduling.dispatchCredit || flowControl !== null ? endpoints : null,
    tracer: o.tracer,
    admission: flowControl,
    requestMemoBytes: config.tokenizer.requestMemoBytes,
  });
  if (config.tokenizer.requestMemoBytes > 0) watchRequestMemo(metrics.registry, director);
  return { director, tokenizer, flowControl, priorities };
}
