// Finds pool endpoints that have never published a KV event — the most common cause of a silent 0 % hit
// rate (vLLM's `--kv-events-config` missing, `publisher` left at "null", a wrong endpoint, or a topic whose
// `${POD_IP}` was never expanded). Warns once per endpoint after a grace period and exposes
// `epp_kv_pod_events_seen{endpoint}` so dashboards can alert on it.
import { type PodAddress, podKeyOf } from "../cache-view/pod-key.js";
import type { Logger } from "../observability/logger.js";
import type { Accuracy } from "./pod-accuracy.js";
import type { PodStateView } from "./pod-state.js";

export interface SilentPodsOptions {
  members(): readonly PodAddress[];
  podStates(): readonly PodStateView[];
  logger: Logger;
  /** How long a member may stay silent before the warning (vLLM publishes as soon as it caches a block). */
  graceMs?: number;
  now?: () => number;
}

export class SilentPods {
  readonly #o: SilentPodsOptions;
  readonly #firstSeen = new Map<string, number>();
  readonly #warned = new Set<string>();

  constructor(options: SilentPodsOptions) {
    this.#o = options;
  }

  /** 1 when the endpoint's events have been seen (its topic names its ip:port or its ip), else 0. */
  seen(): Map<string, 0 | 1> {
    const heard = new Set(this.#o.podStates().map((s) => s.podId));
    const out = new Map<string, 0 | 1>();
    const has = (id: string) => heard.has(id);
    for (const m of this.#o.members()) out.set(m.address, podKeyOf(has, m) !== null ? 1 : 0);
    return out;
  }

  /**
   * Accuracy per pod, keyed like the other `epp_kv_*` metrics (the pod's KV-event id); a pool member that
   * never published is `no-events`, keyed by its address.
   */
  accuracy(): Map<string, Accuracy> {
    const states = this.#o.podStates();
    const known = new Set(states.map((s) => s.podId));
    const out = new Map<string, Accuracy>();
    const has = (id: string) => known.has(id);
    for (const m of this.#o.members()) if (podKeyOf(has, m) === null) out.set(m.address, "no-events");
    for (const s of states) out.set(s.podId, s.accuracy);
    return out;
  }

  /** Call periodically: warns once per endpoint silent for longer than the grace period. */
  check(): void {
    const now = (this.#o.now ?? Date.now)();
    const grace = this.#o.graceMs ?? 60_000;
    const seen = this.seen();
    for (const address of this.#firstSeen.keys()) if (!seen.has(address)) this.#firstSeen.delete(address);
    for (const [address, ok] of seen) {
      if (!this.#firstSeen.has(address)) this.#firstSeen.set(address, now);
      if (ok === 1) {
        if (this.#warned.delete(address))
          this.#o.logger.info({ endpoint: address }, "KV events now arriving from pod");
        continue;
      }
      if (this.#warned.has(address) || now - this.#firstSeen.get(address)! < grace) continue;
      this.#warned.add(address);
      this.#o.logger.warn(
        { endpoint: address, silentForMs: now - this.#firstSeen.get(address)! },
        "pod has published no KV events: its cache is invisible to kvpick (check vLLM --kv-events-config: " +
          'enable_kv_cache_events true, publisher "zmq", endpoint tcp://<kvpick>:5557, topic kv@<pod-ip>@<model> ' +
          "with the pod IP expanded)",
      );
    }
  }
}
