// ZeroMQ SUB side of vLLM's KV-event stream, in the two deployment shapes:
// - bind (reference deployment): one SUB bound on `kvEvents.endpoint`; every vLLM PUB connects to it and
//   names itself in the topic `kv@<pod>@<model>`.
// - connect (several EPP replicas): one SUB per pool endpoint dialling the pod's bound PUB
//   (`tcp://<pod-ip>:<kvEvents.port>`; DP rank N on port + N); the pod id given by the caller wins.
// Messages are handed to KvEventIngest one at a time, synchronously, in arrival order per socket. With
// replay on (`kvEvents.replayPort`), a connect-mode socket's (re)connection asks the pod for what it missed.
import { Subscriber } from "zeromq";
import type { Config } from "../config/schema.js";
import type { BlockIndex } from "../kv-index/block-index.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { IndexMirror } from "./index-mirror.js";
import { type HashCheckConfig, KvEventIngest, type PodStateView } from "./ingest.js";

export interface KvEventSubscriberOptions {
  config: Config["kvEvents"];
  /** kvpick's own hash configuration (the `tokenizer` section), for the hash-configuration check. */
  hash: HashCheckConfig;
  index: BlockIndex;
  logger: Logger;
  metrics: Metrics;
  /** Optional mirror of every applied change (the shared index in Redis). */
  mirror?: IndexMirror | undefined;
  /** Bind mode: whether a topic's pod id belongs to the pool (see KvEventIngest); absent = any pod. */
  admit?: (podId: string) => boolean;
  /**
   * Where a pod's publisher of `rank` serves replays, or null. Default with `kvEvents.replayPort`:
   * tcp://<host of the pod id>:<replayPort + rank>. Replay is off without either.
   */
  replayEndpoint?: (podId: string, rank: number | null) => string | null;
}

// vLLM's PUB uses hwm 100000; match it so a burst is queued rather than dropped (= a seq gap).
const RECEIVE_HWM = 100_000;

export class KvEventSubscriber {
  readonly ingest: KvEventIngest;
  readonly #config: Config["kvEvents"];
  readonly #log: Logger;
  #bound: Subscriber | null = null;
  readonly #pods = new Map<string, Subscriber[]>();
  readonly #loops = new Set<Promise<void>>();
  readonly #replay: boolean;
  #closed = false;

  constructor(options: KvEventSubscriberOptions) {
    const c = options.config;
    this.#config = c;
    this.#log = options.logger.child({ component: "kv-events" });
    const port = c.replayPort ?? 0;
    const endpoint =
      options.replayEndpoint ??
      (port > 0 ? (pod: string, rank: number | null) => defaultEndpoint(pod, port + (rank ?? 0)) : null);
    this.#replay = endpoint !== null;
    this.ingest = new KvEventIngest({
      index: options.index,
      logger: this.#log,
      metrics: options.metrics,
      hash: options.hash,
      mirror: options.mirror,
      healAfterMs: c.healAfterMs,
      ...(options.admit === undefined ? {} : { admit: options.admit }),
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
  }

  /** Bind mode: binds `kvEvents.endpoint`. Connect mode: nothing until `addPod`. */
  async start(): Promise<void> {
    if (this.#config.mode === "bind") await this.bind(this.#config.endpoint);
  }

  /**
   * Binds a SUB socket (e.g. "tcp://*:5557"; "tcp://127.0.0.1:*" picks a free port) and returns the bound
   * address. Every publisher connecting to it is a pod named by its topic.
   */
  async bind(endpoint: string): Promise<string> {
    if (this.#bound !== null) throw new Error("kv-events subscriber already bound");
    const sock = this.#socket();
    try {
      await sock.bind(endpoint);
    } catch (err) {
      sock.close(); // e.g. the port is still held by a socket closing: the caller may retry
      throw err;
    }
    this.#bound = sock;
    this.#log.info({ endpoint: sock.lastEndpoint }, "kv-events: listening for vLLM publishers");
    this.#run(sock, null);
    return sock.lastEndpoint ?? endpoint;
  }

  /** The bound address in bind mode (resolved port), else null. */
  get endpoint(): string | null {
    return this.#bound?.lastEndpoint ?? null;
  }

  /**
   * Connect mode: subscribes to a pod's publisher(s). `podId` names the pod in the index and metrics (the
   * scheduler's endpoint id, "ip:port"); `endpoints` default to `tcp://<host of podId>:<kvEvents.port>`.
   * Pass one endpoint per data-parallel rank (port + rank) for DP deployments. Idempotent per podId.
   */
  addPod(podId: string, endpoints?: string | readonly string[]): void {
    if (this.#closed || this.#pods.has(podId)) return;
    const list = endpoints === undefined ? [defaultEndpoint(podId, this.#config.port)] : [endpoints].flat();
    const socks = list.map((ep) => {
      const sock = this.#socket();
      // Proactive replay on connect and reconnect (llm-d): whatever the pod published meanwhile.
      if (this.#replay)
        sock.events.on("connect", () => {
          if (this.#pods.has(podId)) this.ingest.connected(podId); // not for a pod removed meanwhile
        });
      sock.connect(ep); // ZeroMQ connects (and reconnects) in the background
      this.#run(sock, podId);
      return sock;
    });
    this.#pods.set(podId, socks);
    this.#log.info({ pod: podId, endpoints: list }, "kv-events: subscribed to pod");
  }

  /** The pod left the pool: closes its sockets (connect mode) and clears everything known about it. */
  removePod(podId: string): void {
    const socks = this.#pods.get(podId);
    if (socks !== undefined) {
      for (const s of socks) s.close();
      this.#pods.delete(podId);
    }
    this.ingest.forgetPod(podId);
  }

  /** Pods with a connect-mode subscription. */
  connectedPods(): string[] {
    return [...this.#pods.keys()];
  }

  podStates(): PodStateView[] {
    return this.ingest.podStates();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#bound?.close();
    for (const socks of this.#pods.values()) for (const s of socks) s.close();
    this.#pods.clear();
    await Promise.all([...this.#loops, this.ingest.close()]);
  }

  #socket(): Subscriber {
    const sock = new Subscriber({ linger: 0, receiveHighWaterMark: RECEIVE_HWM });
    sock.subscribe(this.#config.topicFilter);
    return sock;
  }

  #run(sock: Subscriber, pod: string | null): void {
    const loop = (async () => {
      try {
        // The iterator ends when the socket is closed.
        for await (const frames of sock) this.ingest.handleMessage(frames, pod);
      } catch (err) {
        if (!sock.closed) this.#log.error({ err, pod }, "kv-events: receive loop failed");
      }
    })();
    this.#loops.add(loop);
    void loop.finally(() => this.#loops.delete(loop));
  }
}

/** `tcp://<host>:<port>` from a pod id "ip", "ip:port" or "[v6]:port". */
export function defaultEndpoint(podId: string, port: number): string {
  let host = podId;
  if (podId.startsWith("[")) host = podId.slice(0, podId.indexOf("]") + 1);
  else if (podId.split(":").length === 2) host = podId.slice(0, podId.indexOf(":"));
  else if (podId.includes(":")) host = `[${podId}]`; // bare IPv6 literal
  return `tcp://${host}:${port}`;
}
