// Watches the pool's InferenceObjective resources (GIE v1.5: `inference.networking.x-k8s.io/v1alpha2`,
// `spec.priority`, `spec.poolRef.name`) and keeps ObjectivePriorities current, with the same list-then-watch
// reflector as pool discovery. A missing CRD (404) is logged once and retried with backoff: the static
// `flowControl.objectives` and the default priority keep working meanwhile.
import type { KubeApi, KubeApiError, KubeObject } from "../endpoints/kube-api.js";
import { Reflector } from "../endpoints/kube-reflector.js";
import type { Logger } from "../observability/logger.js";
import type { ObjectivePriorities } from "./objective-priorities.js";
import type { Service } from "../service-group.js";

export const OBJECTIVE_GROUP_VERSION = "inference.networking.x-k8s.io/v1alpha2";

export interface ObjectiveWatcherOptions {
  api: KubeApi;
  namespace: string;
  /** Only objectives whose spec.poolRef.name is this pool count; null = every objective of the namespace. */
  poolName: string | null;
  priorities: ObjectivePriorities;
  logger: Logger;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

export class ObjectiveWatcher implements Service {
  readonly name = "objective-watcher";
  readonly #reflector: Reflector;

  constructor(o: ObjectiveWatcherOptions) {
    const log = o.logger.child({ component: "objective-watcher" });
    let missingLogged = false;
    const entry = (obj: KubeObject): [string, number] | null => {
      const name = obj.metadata?.name;
      if (name === undefined) return null;
      const spec = obj.spec ?? {};
      const poolRef = spec.poolRef as { name?: unknown } | undefined;
      if (o.poolName !== null && poolRef?.name !== o.poolName) return null;
      const p = spec.priority;
      // GIE: an objective without a priority has priority 0.
      return [name, typeof p === "number" && Number.isInteger(p) ? p : 0];
    };
    this.#reflector = new Reflector({
      api: o.api,
      path: () =>
        `/apis/${OBJECTIVE_GROUP_VERSION}/namespaces/${encodeURIComponent(o.namespace)}/inferenceobjectives`,
      query: {},
      what: "inferenceobjectives",
      logger: log,
      onList: (items) => {
        o.priorities.replaceAll(items.map(entry).filter((e): e is [string, number] => e !== null));
        log.info({ objectives: o.priorities.size }, "inference objectives listed");
      },
      onEvent: (type, obj) => {
        const name = obj.metadata?.name;
        if (name === undefined) return;
        const e = entry(obj);
        if (type === "DELETED" || e === null) o.priorities.delete(name);
        else o.priorities.set(e[0], e[1]);
      },
      onError: (err: KubeApiError) => {
        if (err.statusCode === 404 && !missingLogged) {
          missingLogged = true;
          log.warn("InferenceObjective CRD not found: priorities come from flowControl.objectives only");
        }
      },
      ...(o.initialBackoffMs === undefined ? {} : { initialBackoffMs: o.initialBackoffMs }),
      ...(o.maxBackoffMs === undefined ? {} : { maxBackoffMs: o.maxBackoffMs }),
    });
  }

  get synced(): boolean {
    return this.#reflector.synced;
  }

  start(): undefined {
    this.#reflector.start();
  }

  stop(_graceMs?: number): Promise<void> {
    return this.#reflector.stop();
  }
}
