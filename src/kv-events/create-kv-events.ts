// The KV-event path, wired once: the ingest (the domain: frames → sequencing → the index), the ZeroMQ
// subscriber feeding it, and, given the pool, pool following. The composition root calls createKvEvents and
// sees the result through its narrow read side (KvEventsView) and its lifecycle (Service).
import type { KvEventsSettings } from "./kv-events-settings.js";
import type { BlockIndex } from "../kv-index/block-index.js";
import type { Logger } from "../observability/logger.js";
import type { KvEventsRecorder } from "./kv-events-recorder.js";
import type { Service } from "../service-group.js";
import type { IndexMirror } from "./index-mirror.js";
import { type HashCheckConfig, KvEventIngest, type PodStateView } from "./ingest.js";
import { PoolFollowing, type PoolSource } from "./pool-following.js";
import { defaultEndpoint, KvEventSubscriber } from "./subscriber.js";

export interface KvEventsOptions {
  config: KvEventsSettings;
  /** kvpick's own hash configuration (the `tokenizer` section), for the hash-configuration check. */
  hash: HashCheckConfig;
  index: BlockIndex;
  logger: Logger;
  recorder: KvEventsRecorder;
  /** Optional mirror of every applied change (the shared index in Redis). */
  mirror?: IndexMirror | undefined;
  /**
   * The pool to follow (membership, replay addresses, subscriptions, silent pods). Absent (tests, benches):
   * every pod is admitted and replays go to tcp://<host of the pod id>:<replayPort + rank>.
   */
  pool?: PoolSource;
  /** Overrides where a pod's publisher of `rank` serves replays (tests); null = it cannot. */
  replayEndpoint?: (podId: string, rank: number | null) => string | null;
}

/** What the rest of kvpick reads about the pods' KV-event streams. */
export interface KvEventsView {
  /** The pod published a batch since kvpick first heard of it (PrefixLookup's `eventDriven`). */
  published(pod: string): boolean;
  /** exact | degraded for a pod that published, null for one never heard of. */
  accuracy(pod: string): "exact" | "degraded" | null;
  /** A pod's KV-event topic names this model. */
  announcesModel(model: string): boolean;
  podStates(): PodStateView[];
}

export class KvEvents implements Service, KvEventsView {
  readonly name = "kv-events";
  readonly ingest: KvEventIngest;
  readonly subscriber: KvEventSubscriber;
  /** Null without a pool to follow. */
  readonly poolFollowing: PoolFollowing | null;

  constructor(ingest: KvEventIngest, subscriber: KvEventSubscriber, following: PoolFollowing | null) {
    this.ingest = ingest;
    this.subscriber = subscriber;
    this.poolFollowing = following;
  }

  /** Binds (bind mode), then follows the pool: start it before the pool is first filled. */
  async start(): Promise<void> {
    await this.subscriber.start();
    this.poolFollowing?.start();
  }

  /** Stops following, closes the sockets, then aborts and waits for the replays. */
  async stop(graceMs = 0): Promise<void> {
    this.poolFollowing?.stop(graceMs);
    await this.subscriber.stop(graceMs);
    await this.ingest.close();
  }

  published(pod: string): boolean {
    return this.ingest.published(pod);
  }

  accuracy(pod: string): "exact" | "degraded" | null {
    return this.ingest.accuracy(pod);
  }

  announcesModel(model: string): boolean {
    return this.ingest.announcesModel(model);
  }

  podStates(): PodStateView[] {
    return this.ingest.podStates();
  }

  /** The bound address in bind mode (resolved port), else null. */
  get endpoint(): string | null {
    return this.subscriber.endpoint;
  }

  /** Binds a SUB socket (tests: see KvEventSubscriber.bind). */
  bind(endpoint: string): Promise<string> {
    return this.subscriber.bind(endpoint);
  }

  /** Connect mode: subscribes to a pod's publisher(s) (see KvEventSubscriber.addPod). */
  addPod(pod: string, endpoints?: string | readonly string[]): void {
    this.subscriber.addPod(pod, endpoints);
  }

  /** The pod left: closes its sockets and forgets everything known about it. */
  removePod(pod: string): void {
    this.subscriber.removePod(pod);
    this.ingest.forgetPod(pod);
  }

  connectedPods(): string[] {
    return this.subscriber.connectedPods();
  }
}

export function createKvEvents(options: KvEventsOptions): KvEvents {
  const c = options.config;
  const log = options.logger.child({ component: "kv-events" });
  const replayPort = c.replayPort ?? 0;
  // Resolved at run time: the pieces below refer to each other.
  let following: PoolFollowing | null = null;
  const endpoint =
    options.replayEndpoint ??
    (replayPort <= 0
      ? null
      : options.pool !== undefined
        ? (pod: string, rank: number | null) => following!.replayEndpoint(pod, rank)
        : (pod: string, rank: number | null) => defaultEndpoint(pod, replayPort + (rank ?? 0)));
  const ingest = new KvEventIngest({
    index: options.index,
    logger: log,
    recorder: options.recorder,
    hash: options.hash,
    mirror: options.mirror,
    healAfterMs: c.healAfterMs,
    // Bind mode: only pods of the pool may write the index (their topic names a member's ip or ip:port).
    ...(options.pool !== undefined && c.mode === "bind" && !c.acceptUnknownPods
      ? { admit: (pod: string) => following!.admits(pod) }
      : {}),
    ...(endpoint === null
      ? {}
      : {
          replay: {
            endpoint,
            timeoutMs: c.replayTimeoutMs,
            cooldownMs: c.replayCooldownMs,
            maxConcurrent: c.maxConcurrentReplays,
            maxHeldBatches: c.maxHeldBatches,
          },
        }),
  });
  const subscriber = new KvEventSubscriber({
    config: c,
    logger: log,
    sink: ingest,
    reportConnects: endpoint !== null,
  });
  if (options.pool !== undefined)
    following = new PoolFollowing({
      config: c,
      pool: options.pool,
      logger: log,
      events: {
        subscribe: (pod, endpoints) => subscriber.addPod(pod, endpoints),
        unsubscribe: (pod) => subscriber.removePod(pod),
        replay: (pod) => ingest.connected(pod),
        forget: (pod) => ingest.forgetPod(pod),
        podStates: () => ingest.podStates(),
      },
    });
  return new KvEvents(ingest, subscriber, following);
}
