// Keeps the KV-event path in step with the pool: which pods may write the index (bind mode), which pods'
// publishers to dial (connect mode, DP rank N on port + N), where each pod serves replays, a replay when a pod
// joins (bind mode: it may hold a warm cache no new event will announce), forgetting pods that leave, and the
// warning for pool members that never publish (silent-pods.ts, checked every 10 s).
import type { KvEventsSettings } from "./kv-events-settings.js";
import type { Logger } from "../observability/logger.js";
import type { Service } from "../service-group.js";
import type { PodStateView } from "./pod-state.js";
import { PoolMembers } from "./pool-members.js";
import { SilentPods } from "./silent-pods.js";
import { tcp } from "./subscriber.js";

/** A pool endpoint as pool following needs it (EndpointSpec fits). */
export interface PoolEndpoint {
  readonly address: string;
  readonly ip: string;
  /** Data-parallel rank (Kubernetes discovery): the KV-event and replay port offset. */
  readonly rank?: number;
}

export interface PoolChange {
  readonly kind: "added" | "updated" | "removed";
  readonly endpoint: PoolEndpoint;
}

/** The pool's membership (EndpointStore fits). */
export interface PoolSource {
  /** Registers a listener called synchronously on every change; returns its unsubscribe function. */
  onChange(listener: (change: PoolChange) => void): () => void;
  get(address: string): PoolEndpoint | undefined;
  specs(): readonly PoolEndpoint[];
}

/** What pool following drives on the KV-event side. */
export interface FollowedEvents {
  /** Connect mode: dial the pod's publisher(s) (default endpoint when absent). */
  subscribe(pod: string, endpoints?: string): void;
  /** Connect mode: close the pod's sockets. */
  unsubscribe(pod: string): void;
  /** Ask the pod's replay socket for what it holds. */
  replay(pod: string): void;
  /** Forget everything known about the pod. */
  forget(pod: string): void;
  podStates(): readonly PodStateView[];
}

export interface PoolFollowingOptions {
  config: Pick<KvEventsSettings, "mode" | "port" | "replayPort">;
  pool: PoolSource;
  events: FollowedEvents;
  logger: Logger;
  /** How often silent pods are checked (default 10 s). */
  silentCheckMs?: number;
}

const SILENT_CHECK_MS = 10_000;

export class PoolFollowing implements Service {
  readonly name = "kv-events pool following";
  /** Pool members that never published, and every pod's accuracy, for /metrics. */
  readonly silentPods: SilentPods;
  readonly #o: PoolFollowingOptions;
  readonly #members = new PoolMembers();
  #unsubscribe: (() => void) | null = null;
  #timer: NodeJS.Timeout | null = null;

  constructor(options: PoolFollowingOptions) {
    this.#o = options;
    this.silentPods = new SilentPods({
      members: () => options.pool.specs(),
      podStates: () => options.events.podStates(),
      logger: options.logger,
    });
  }

  /** Bind mode: whether a topic's pod id ("ip" or "ip:port") names a member of the pool. */
  admits(pod: string): boolean {
    return this.#members.has(pod);
  }

  /**
   * Where the pod's publisher of `rank` serves replays, or null. vLLM's replay ROUTER listens on
   * replay_endpoint's port + DP rank; only pool members are dialled (a topic is chosen by its sender). A
   * discovered endpoint knows its rank; an "ip" topic names the rank in its batches.
   */
  replayEndpoint(pod: string, rank: number | null): string | null {
    const port = this.#o.config.replayPort ?? 0;
    if (port <= 0) return null;
    const e = this.#o.pool.get(pod);
    if (e !== undefined) return tcp(e.ip, port + (e.rank ?? rank ?? 0));
    return this.#members.has(pod) ? tcp(pod, port + (rank ?? 0)) : null;
  }

  /** Follows the pool from now on (start before the pool is first filled) and checks silent pods. */
  start(): undefined {
    this.#unsubscribe ??= this.#o.pool.onChange((change) => this.#changed(change));
    const every = this.#o.silentCheckMs ?? SILENT_CHECK_MS;
    this.#timer ??= setInterval(() => this.silentPods.check(), every).unref();
    return undefined;
  }

  stop(_graceMs = 0): undefined {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    return undefined;
  }

  #changed({ kind, endpoint: e }: PoolChange): void {
    const ev = this.#o.events;
    if (kind === "added") this.#members.add(e);
    if (kind === "removed") this.#members.remove(e);
    if (this.#o.config.mode === "connect") {
      if (kind === "added") ev.subscribe(e.address, kvEventsEndpointOf(e, this.#o.config.port));
      if (kind === "removed") {
        ev.unsubscribe(e.address);
        ev.forget(e.address);
      }
    } else if (kind === "added" && (this.#o.config.replayPort ?? 0) > 0) {
      // Bind mode: a pod joining the pool (or every pod, at startup) may already hold a warm cache that no
      // new event will ever announce. Ask its replay socket for the ring now, under the reference topic's id
      // (the IP; a pod whose topic is "ip:port" is still found by IP). Once per IP (DP ranks share it).
      if (this.#members.onIp(e.ip) === 1) ev.replay(e.ip);
    } else if (kind === "removed") {
      // Bind mode names pods by topic: "ip" (reference topic) or "ip:port". Another endpoint on the same IP
      // (a data-parallel rank) keeps the IP-named state alive.
      ev.forget(e.address);
      if (this.#members.onIp(e.ip) === 0) ev.forget(e.ip);
    }
  }
}

/** Connect mode: a data-parallel rank publishes on the pod's KV-event port + rank; else the default. */
function kvEventsEndpointOf(e: PoolEndpoint, basePort: number): string | undefined {
  return e.rank === undefined ? undefined : tcp(e.ip, basePort + e.rank);
}
