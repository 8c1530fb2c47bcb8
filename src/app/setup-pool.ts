// Composition-root section "the pool": where endpoints come from (a static list or Kubernetes discovery), the
// load scraper that reads each pod's /metrics, and the InferenceObjective watcher flow control reads
// priorities from. Only construction from configuration: behaviour lives in endpoints/ and flow-control/.
import type { Config } from "../config/schema.js";
import { EndpointStore } from "../endpoints/endpoint-store.js";
import type { KubeApi } from "../endpoints/kube-api.js";
import { KubeDiscovery } from "../endpoints/kube-discovery.js";
import { LoadScraper } from "../endpoints/load-scraper.js";
import { parseEndpointList } from "../endpoints/parse-endpoints.js";
import { metricSpecs } from "../endpoints/vllm-metrics.js";
import type { ObjectivePriorities } from "../flow-control/objective-priorities.js";
import { ObjectiveWatcher } from "../flow-control/objective-watcher.js";
import type { LearntBlockSize } from "../kv-index/learnt-block-size.js";
import type { Logger } from "../observability/logger.js";
import type { Service } from "../service-group.js";

export interface Pool {
  readonly endpoints: EndpointStore;
  readonly scraper: LoadScraper;
  /** Kubernetes discovery when the pool comes from an InferencePool or a selector, else null. */
  readonly discovery: KubeDiscovery | null;
  /** Fills the store: discovery (readiness follows its sync, startup never waits) or the static list. */
  readonly source: Service;
  /** Whether the pool is known: a static one once started, a discovered one once its pods are listed. */
  synced(): boolean;
}

export function setupPool(
  config: Config,
  o: {
    logger: Logger;
    kubeApi: () => KubeApi;
    blockSizes: LearntBlockSize;
    backoffMs?: { initial: number; max: number } | undefined;
  },
): Pool {
  const endpoints = new EndpointStore({ staleAfterMs: config.endpoints.staleAfterMs, logger: o.logger });
  const scraper = new LoadScraper(endpoints, {
    intervalMs: config.endpoints.scrapeIntervalMs,
    timeoutMs: config.endpoints.scrapeTimeoutMs,
    path: config.endpoints.metricsPath,
    scheme: config.endpoints.metricsScheme,
    insecureSkipVerify: config.endpoints.metricsInsecureSkipVerify,
    specs: metricSpecs(config.endpoints.metricNames),
    // With token keys (auto/tokens) the pods' hash algo does not matter, only their block size.
    expected: config.kvEvents.keys === "engine" ? { hashAlgo: config.tokenizer.hashAlgo } : {},
    blockSizes: o.blockSizes,
    logger: o.logger,
  });
  const discovery = isKube(config)
    ? new KubeDiscovery({
        api: o.kubeApi(),
        store: endpoints,
        logger: o.logger,
        namespace: namespaceOf(config),
        poolName: config.pool.name,
        poolGroup: config.pool.group,
        selector: config.pool.endpointSelector,
        targetPorts: config.pool.targetPorts,
        ...backoff(o.backoffMs),
      })
    : null;
  let listed = false;
  const staticList: Service = {
    name: "static-pool",
    start: () => {
      endpoints.replaceAll(parseEndpointList(config.pool.endpoints));
      listed = true;
      return undefined;
    },
    stop: () => undefined,
  };
  return {
    endpoints,
    scraper,
    discovery,
    source: discovery ?? staticList,
    synced: () => (discovery === null ? listed : discovery.synced()),
  };
}

/** InferenceObjective priorities for flow control: watched in Kubernetes pools when flowControl asks. */
export function setupObjectiveWatcher(
  config: Config,
  o: {
    logger: Logger;
    kubeApi: () => KubeApi;
    priorities: ObjectivePriorities;
    backoffMs?: { initial: number; max: number } | undefined;
  },
): ObjectiveWatcher | null {
  if (!config.flowControl.enabled || !isKube(config) || !config.flowControl.watchObjectives) return null;
  return new ObjectiveWatcher({
    api: o.kubeApi(),
    namespace: namespaceOf(config),
    poolName: config.pool.name,
    priorities: o.priorities,
    logger: o.logger,
    ...backoff(o.backoffMs),
  });
}

/** The pool comes from an InferencePool or a label selector. */
function isKube(config: Config): boolean {
  return config.pool.name !== null || config.pool.endpointSelector !== null;
}

function namespaceOf(config: Config): string {
  return config.pool.namespace ?? process.env.NAMESPACE ?? "default";
}

function backoff(ms: { initial: number; max: number } | undefined) {
  return ms === undefined ? {} : { initialBackoffMs: ms.initial, maxBackoffMs: ms.max };
}
