// What the composition root (app.ts) offers its callers — `kvpick serve`, the demo and the tests: the options
// it takes, the ports it bound, and the running app's handles.
import type { KubeConfig } from "@kubernetes/client-node";
import type { Config } from "../config/schema.js";
import type { EndpointStore } from "../endpoints/endpoint-store.js";
import type { KubeDiscovery } from "../endpoints/kube-discovery.js";
import type { KvEvents } from "../kv-events/create-kv-events.js";
import type { BlockIndex } from "../kv-index/block-index.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { PromptTokenizer } from "../routing/director.js";
import type { RedisSharedIndex } from "../shared-index/redis-shared-index.js";

export interface AppOptions {
  config: Config;
  logger: Logger;
  /** Bind address of every listener; "0.0.0.0" in a pod, "127.0.0.1" in tests. */
  host?: string;
  /** Kubernetes credentials for discovery; default: in-cluster, else $KUBECONFIG / ~/.kube/config. */
  kubeConfig?: KubeConfig;
  /** Discovery retry tuning (tests). */
  discoveryBackoffMs?: { initial: number; max: number };
  /** Wraps the prompt tokenizer routing uses (tests: a stand-in that holds requests mid-routing). */
  wrapTokenizer?: (tokenizer: PromptTokenizer) => PromptTokenizer;
}

export interface AppPorts {
  grpcPort: number;
  healthPort: number;
  metricsPort: number;
  /** The bound KV-event address in bind mode (resolved port), else null. */
  kvEventsEndpoint: string | null;
}

export interface App {
  readonly config: Config;
  readonly metrics: Metrics;
  readonly index: BlockIndex;
  readonly endpoints: EndpointStore;
  readonly kvEvents: KvEvents;
  /** Kubernetes discovery when the pool comes from an InferencePool or a selector, else null. */
  readonly discovery: KubeDiscovery | null;
  /** The shared index in Redis when `index.redis.url` is set, else null. */
  readonly sharedIndex: RedisSharedIndex | null;
  start(): Promise<AppPorts>;
  /** Health → NOT_SERVING, in-flight streams get `graceMs` to finish, then everything closes. */
  stop(graceMs?: number): Promise<void>;
}
