// ZeroMQ SUB side of vLLM's KV-event stream, in the two deployment shapes:
// - bind (reference deployment): one SUB bound on `kvEvents.endpoint`; every vLLM PUB connects to it and
//   names itself in the topic `kv@<pod>@<model>`.
// - connect (several EPP replicas): one SUB per pool endpoint dialling the pod's bound PUB
//   (`tcp://<pod-ip>:<kvEvents.port>`; DP rank N on port + N); the pod id given by the caller wins.
// A transport only: messages go to the sink one at a time, in arrival order per socket (the next one only
// once the sink is done with the last: it returns a promise while it decodes a huge one in slices); what
// they mean (sequencing, replays, the index) is the ingest's business (create-kv-events.ts wires the two).
import { Subscriber } from "zeromq";
import type { KvEventsSettings } from "./kv-events-settings.js";
import type { Logger } from "../observability/logger.js";
import type { Service } from "../service-group.js";

/** Where the subscriber hands what it receives (KvEventIngest in production). */
export interface KvEventSink {
  /** One multipart message. `pod` is the pod a connect-mode socket was opened for; null in bind mode. */
  handleMessage(frames: readonly Uint8Array[], pod: string | null): Promise<void> | undefined;
  /** A connect-mode socket of `pod` (re)connected: it may have missed batches meanwhile. */
  connected(pod: string): void;
}

export interface KvEventSubscriberOptions {
  config: Pick<KvEventsSettings, "mode" | "endpoint" | "port" | "topicFilter">;
  logger: Logger;
  sink: KvEventSink;
  /** Tell the sink when a connect-mode socket (re)connects (only worth it with replay on). */
  reportConnects?: boolean;
}

// vLLM's PUB uses hwm 100000; match it so a burst is queued rather than dropped (= a seq gap).
const RECEIVE_HWM = 100_000;

export class KvEventSubscriber implements Service {
  readonly name = "kv-events subscriber";
  readonly #config: KvEventSubscriberOptions["config"];
  readonly #log: Logger;
  readonly #sink: KvEventSink;
  readonly #reportConnects: boolean;
  #bound: Subscriber | null = null;
  readonly #pods = new Map<string, Subscriber[]>();
  readonly #loops = new Set<Promise<void>>();
  #closed = false;

  constructor(options: KvEventSubscriberOptions) {
    this.#config = options.config;
    this.#log = options.logger;
    this.#sink = options.sink;
    this.#reportConnects = options.reportConnects ?? false;
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
      if (this.#reportConnects)
        sock.events.on("connect", () => {
          if (this.#pods.has(podId)) this.#sink.connected(podId); // not for a pod removed meanwhile
        });
      sock.connect(ep); // ZeroMQ connects (and reconnects) in the background
      this.#run(sock, podId);
      return sock;
    });
    this.#pods.set(podId, socks);
    this.#log.info({ pod: podId, endpoints: list }, "kv-events: subscribed to pod");
  }

  /** Connect mode: closes the pod's sockets (what is known about the pod is the ingest's to forget). */
  removePod(podId: string): void {
    const socks = this.#pods.get(podId);
    if (socks === undefined) return;
    for (const s of socks) s.close();
    this.#pods.delete(podId);
  }

  /** Pods with a connect-mode subscription. */
  connectedPods(): string[] {
    return [...this.#pods.keys()];
  }

  /** Closes every socket and waits for the receive loops to end (nothing is in flight: no grace needed). */
  async stop(_graceMs = 0): Promise<void> {
    this.#closed = true;
    this.#bound?.close();
    for (const socks of this.#pods.values()) for (const s of socks) s.close();
    this.#pods.clear();
    await Promise.all([...this.#loops]);
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
        for await (const frames of sock) {
          const busy = this.#sink.handleMessage(frames, pod);
          if (busy !== undefined) await busy;
        }
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

/** tcp://<ip>:<port> with IPv6 in brackets. */
export function tcp(ip: string, port: number): string {
  return `tcp://${ip.includes(":") ? `[${ip}]` : ip}:${port}`;
}
