// Kubernetes discovery: keeps the EndpointStore equal to the pool's pods. Two ways to name the pool:
// - an InferencePool (`poolName`): watch it (by name), then watch the pods its selector picks, on its target
//   ports; a selector or port change restarts the pod watch (its re-list resyncs the store);
// - a bare selector (`selector` + `targetPorts`, GIE's --endpoint-selector, no CRDs needed).
// The store is written only here: `replaceAll` after each pod list, `upsert` / `remove` per watch event.
// API-server trouble never throws out of here: reflectors retry forever and the store keeps its last state.
// The pool being deleted (or absent) empties the store and makes `synced()` false, as GIE's datastore does.
import type { Logger } from "../observability/logger.js";
import type { EndpointSpec } from "./endpoint.js";
import type { EndpointStore } from "./endpoint-store.js";
import type { KubeApi, KubeApiError, KubeObject } from "./kube-api.js";
import {
  InvalidPoolError,
  POOL_GROUP_V1,
  POOL_GROUP_V1ALPHA2,
  type PoolSpec,
  parsePool,
  poolCollectionPath,
} from "./kube-inference-pool.js";
import { matchesLabels, parseSelector, selectorString } from "./kube-label-selector.js";
import { podEndpoints, podKey } from "./kube-pod-endpoints.js";
import { type ObjectEventType, Reflector } from "./kube-reflector.js";
import type { Service } from "../service-group.js";

export interface KubeDiscoveryOptions {
  api: KubeApi;
  store: EndpointStore;
  logger: Logger;
  namespace: string;
  /** InferencePool mode. */
  poolName?: string | null;
  /** InferencePool API group (`inference.networking.k8s.io` v1 or `inference.networking.x-k8s.io` v1alpha2). */
  poolGroup?: string;
  /** Selector mode: `k=v,…` and the model-server ports (one endpoint per port). */
  selector?: string | null;
  targetPorts?: readonly number[];
  /** Reflector tuning (tests use short backoffs). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  watchTimeoutSeconds?: number;
}

export class KubeDiscovery implements Service {
  readonly name = "kube-discovery";
  readonly #o: KubeDiscoveryOptions;
  readonly #log: Logger;
  #poolReflector: Reflector | null = null;
  #podReflector: Reflector | null = null;
  #pool: PoolSpec | null = null;
  /** Addresses each pod contributes now ("ns/name" → addresses). */
  readonly #podAddresses = new Map<string, string[]>();
  #poolGroup: string;
  #stopped = false;
  #restarting: Promise<void> = Promise.resolve();

  constructor(options: KubeDiscoveryOptions) {
    if ((options.poolName ?? null) === null && (options.selector ?? null) === null)
      throw new Error("KubeDiscovery needs a pool name or an endpoint selector");
    this.#o = options;
    this.#log = options.logger.child({ component: "discovery" });
    this.#poolGroup = options.poolGroup ?? POOL_GROUP_V1;
  }

  /** The pool's pods have been listed (readiness). Stays true through API-server outages. */
  synced(): boolean {
    return this.#pool !== null && (this.#podReflector?.synced ?? false);
  }

  /** The pool as last seen (null before the first sighting or after deletion). */
  get pool(): PoolSpec | null {
    return this.#pool;
  }

  start(): undefined {
    const { poolName, namespace } = this.#o;
    this.#log.info(
      {
        server: this.#o.api.server,
        namespace,
        poolName,
        poolGroup: this.#poolGroup,
        selector: this.#o.selector,
      },
      "discovery: starting",
    );
    if (poolName === undefined || poolName === null) {
      const reqs = parseSelector(this.#o.selector!);
      const ports = this.#o.targetPorts ?? [];
      if (ports.length === 0)
        throw new InvalidPoolError("--endpoint-target-ports is required with --endpoint-selector");
      this.#setPool({ selector: reqs, selectorText: selectorString(reqs), targetPorts: ports });
      return;
    }
    this.#poolReflector = new Reflector({
      ...this.#tuning(),
      api: this.#o.api,
      path: () => poolCollectionPath(this.#poolGroup, namespace),
      query: { fieldSelector: `metadata.name=${poolName}` },
      what: "inferencepool",
      logger: this.#log,
      onList: (items) => this.#onPool(items.find((p) => p.metadata?.name === poolName) ?? null),
      onEvent: (type, pool) => {
        if (pool.metadata?.name !== poolName) return;
        this.#onPool(type === "DELETED" ? null : pool);
      },
      onError: (err) => this.#onPoolError(err),
    });
    this.#poolReflector.start();
  }

  async stop(_graceMs?: number): Promise<void> {
    this.#stopped = true;
    await this.#restarting;
    await Promise.all([this.#poolReflector?.stop(), this.#podReflector?.stop()]);
  }

  #tuning() {
    const t: { initialBackoffMs?: number; maxBackoffMs?: number; watchTimeoutSeconds?: number } = {};
    if (this.#o.initialBackoffMs !== undefined) t.initialBackoffMs = this.#o.initialBackoffMs;
    if (this.#o.maxBackoffMs !== undefined) t.maxBackoffMs = this.#o.maxBackoffMs;
    if (this.#o.watchTimeoutSeconds !== undefined) t.watchTimeoutSeconds = this.#o.watchTimeoutSeconds;
    return t;
  }

  /** 404 on the collection = that API version is not installed: try the other published group. */
  #onPoolError(err: KubeApiError): void {
    if (err.statusCode !== 404) return;
    const other = this.#poolGroup === POOL_GROUP_V1 ? POOL_GROUP_V1ALPHA2 : POOL_GROUP_V1;
    this.#log.warn(
      { group: this.#poolGroup, next: other },
      "discovery: InferencePool API not served by this cluster (CRD missing?); trying the other group",
    );
    this.#poolGroup = other;
  }

  #onPool(pool: KubeObject | null): void {
    if (pool === null) {
      if (this.#pool !== null || this.#o.store.size > 0)
        this.#log.warn(
          { poolName: this.#o.poolName },
          "discovery: InferencePool not found or deleted; pool emptied",
        );
      this.#pool = null;
      this.#restartPods(null);
      return;
    }
    let spec: PoolSpec;
    try {
      spec = parsePool(pool);
    } catch (err) {
      // Keep routing on the last valid spec: a bad edit must not take the pool down.
      this.#log.error(
        { err: (err as Error).message, poolName: this.#o.poolName },
        "discovery: invalid InferencePool ignored",
      );
      return;
    }
    this.#setPool(spec);
  }

  #setPool(spec: PoolSpec): void {
    const prev = this.#pool;
    this.#pool = spec;
    if (
      prev !== null &&
      prev.selectorText === spec.selectorText &&
      prev.targetPorts.join(",") === spec.targetPorts.join(",")
    )
      return;
    this.#log.info({ selector: spec.selectorText, targetPorts: spec.targetPorts }, "discovery: pool spec");
    this.#restartPods(spec);
  }

  /** Replaces the pod watch (serialised: an old reflector is fully stopped before the next one writes). */
  #restartPods(spec: PoolSpec | null): void {
    this.#restarting = this.#restarting.then(async () => {
      const old = this.#podReflector;
      this.#podReflector = null;
      await old?.stop();
      if (this.#stopped) return;
      if (spec === null || this.#pool !== spec) {
        if (spec === null && this.#pool === null) {
          this.#podAddresses.clear();
          this.#o.store.replaceAll([]);
        }
        return; // superseded by a later spec (its own restart follows) or the pool is gone
      }
      const reflector = new Reflector({
        ...this.#tuning(),
        api: this.#o.api,
        path: () => `/api/v1/namespaces/${encodeURIComponent(this.#o.namespace)}/pods`,
        query: { labelSelector: spec.selectorText },
        what: "pods",
        logger: this.#log,
        onList: (items) => this.#onPodList(spec, items),
        onEvent: (type, pod) => this.#onPodEvent(spec, type, pod),
      });
      this.#podReflector = reflector;
      reflector.start();
    });
  }

  #onPodList(spec: PoolSpec, pods: KubeObject[]): void {
    const all: EndpointSpec[] = [];
    this.#podAddresses.clear();
    for (const pod of pods) {
      const eps = this.#endpointsOf(spec, pod);
      if (eps.length > 0)
        this.#podAddresses.set(
          podKey(pod),
          eps.map((e) => e.address),
        );
      all.push(...eps);
    }
    this.#o.store.replaceAll(all);
    this.#log.info(
      { pods: this.#podAddresses.size, endpoints: all.length, ready: all.filter((e) => e.ready).length },
      "discovery: pool resynced",
    );
  }

  #onPodEvent(spec: PoolSpec, type: ObjectEventType, pod: KubeObject): void {
    const key = podKey(pod);
    const eps = type === "DELETED" ? [] : this.#endpointsOf(spec, pod);
    const before = this.#podAddresses.get(key) ?? [];
    const now = new Set(eps.map((e) => e.address));
    for (const address of before) if (!now.has(address)) this.#o.store.remove(address);
    for (const e of eps) this.#o.store.upsert(e);
    if (eps.length > 0) this.#podAddresses.set(key, [...now]);
    else this.#podAddresses.delete(key);
    const was = before.length > 0;
    if (was !== eps.length > 0 || type === "DELETED")
      this.#log.info(
        { pod: key, event: type, endpoints: [...now], ready: eps[0]?.ready ?? false },
        eps.length > 0 ? "discovery: pod joined the pool" : "discovery: pod left the pool",
      );
  }

  #endpointsOf(spec: PoolSpec, pod: KubeObject): EndpointSpec[] {
    if (!matchesLabels(spec.selector, pod.metadata?.labels)) return [];
    if (pod.metadata?.namespace !== undefined && pod.metadata.namespace !== this.#o.namespace) return [];
    return podEndpoints(pod, spec.targetPorts);
  }
}
