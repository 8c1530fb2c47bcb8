// vLLM's ZmqEventPublisher, simulated: one PUB socket per pod, one multipart message per engine step
// [topic, 8-byte big-endian seq starting at 0, msgspec payload]. Connects to `endpoint` (the EPP binds,
// reference deployment) or binds it (the EPP connects), per vLLM's rule: bind when the endpoint contains
// `*` or `::` or is ipc/inproc. Every batch sent enters a ring of the last `bufferSteps` batches, served by
// an optional replay ROUTER (vLLM's `replay_endpoint`, kv-event-replay-server.ts).
// Fault knobs: drop a fraction of batches, delay every batch, restart (new socket, seq back to 0, empty
// ring). A dropped batch models a message lost on the wire (a slow subscriber past its high-water mark, a
// broken connection): it took its seq and IS in the replay ring, so replay can fill the gap. (vLLM's other
// loss, a send that raises, is not buffered; a ring too small for the gap models the unfillable case.)
import { Publisher } from "zeromq";
import { createLogger, type Logger } from "../observability/logger.js";
import type { SimClock } from "./clock.js";
import { type EncodeOptions, KvEventEncoder } from "./kv-event-encoder.js";
import type { SimEventBatch } from "./kv-event.js";
import { type ReplayLayout, SimReplayServer } from "./kv-event-replay-server.js";
import { type Rng, seededRng } from "./random.js";
import { ReplayRing } from "./replay-ring.js";

/** vLLM's `buffer_steps` default. */
export const DEFAULT_BUFFER_STEPS = 10_000;

export interface PublisherOptions extends EncodeOptions {
  /** e.g. tcp://127.0.0.1:5557 (connect) or tcp://*:5557 / tcp://127.0.0.1:* (bind). */
  endpoint: string;
  /** `kv@<pod>@<model>`. */
  topic: string;
  clock: SimClock;
  /** Fraction of batches silently dropped after taking a seq (0..1). */
  dropFraction?: number;
  /** Simulated seconds between the engine step and the send. */
  delaySeconds?: number;
  rng?: Rng;
  /** vLLM `replay_endpoint` (always bound, e.g. tcp://10.0.0.1:5558); null/absent = no replay socket. */
  replayEndpoint?: string | null;
  /** Reply layout of the replay socket (default vLLM ≤ 0.25, "v0.10"). */
  replayLayout?: ReplayLayout;
  /** vLLM `buffer_steps`: batches kept for replay (default 10,000). */
  bufferSteps?: number;
  /** For the replay socket's warnings. */
  logger?: Logger;
}

/** vLLM: bind if the endpoint has `*` or `::`, or is ipc:// / inproc://; otherwise connect. */
export function publisherBinds(endpoint: string): boolean {
  return (
    endpoint.includes("*") ||
    endpoint.includes("::") ||
    endpoint.startsWith("ipc://") ||
    endpoint.startsWith("inproc://")
  );
}

export class SimKvEventPublisher {
  readonly topic: string;
  readonly encoder: KvEventEncoder;
  dropFraction: number;
  delaySeconds: number;
  /** Next sequence number. */
  seq = 0n;
  sent = 0;
  dropped = 0;
  readonly #o: PublisherOptions;
  readonly #rng: Rng;
  #socket: Publisher | null = null;
  #queue: Array<[string, Buffer, Uint8Array]> = [];
  #sending = false;
  #bound: string | null = null;
  readonly #ring: ReplayRing;
  #replay: SimReplayServer | null = null;
  /** Bumped by restart(): batches delayed from the previous incarnation are not sent by the new one. */
  #epoch = 0;

  constructor(options: PublisherOptions) {
    this.#o = options;
    this.topic = options.topic;
    this.encoder = new KvEventEncoder(options);
    this.dropFraction = options.dropFraction ?? 0;
    this.delaySeconds = options.delaySeconds ?? 0;
    this.#rng = options.rng ?? seededRng(1);
    this.#ring = new ReplayRing(options.bufferSteps ?? DEFAULT_BUFFER_STEPS);
  }

  /** The resolved bound address in bind mode, else null. */
  get boundEndpoint(): string | null {
    return this.#bound;
  }

  /** The resolved replay (ROUTER) address, or null without a replay socket. */
  get replayEndpoint(): string | null {
    return this.#replay?.endpoint ?? null;
  }

  /** The replay socket (requests served / ignored), or null. */
  get replayServer(): SimReplayServer | null {
    return this.#replay;
  }

  /** Batches currently held for replay. */
  get buffered(): number {
    return this.#ring.size;
  }

  async start(): Promise<void> {
    // vLLM: hwm 100000, linger 0 on close.
    const s = new Publisher({ sendHighWaterMark: 100_000, linger: 0 });
    this.#socket = s;
    if (publisherBinds(this.#o.endpoint)) {
      await s.bind(this.#o.endpoint);
      this.#bound = s.lastEndpoint ?? this.#o.endpoint;
    } else {
      s.connect(this.#o.endpoint);
    }
    if (this.#replay === null && this.#o.replayEndpoint != null) {
      const ring = this.#ring;
      const self = this;
      this.#replay = new SimReplayServer({
        endpoint: this.#o.replayEndpoint,
        layout: this.#o.replayLayout ?? "v0.10",
        logger: this.#o.logger ?? createLogger({ level: "silent" }),
        source: {
          topic: this.topic,
          snapshot: (start) => ring.from(start),
          get epoch() {
            return self.#epoch;
          },
        },
      });
      await this.#replay.start();
    }
  }

  /** Queues one step's batch; frames leave in order. */
  publish(batch: SimEventBatch): void {
    const seq = this.seq++;
    const lost = this.dropFraction > 0 && this.#rng() < this.dropFraction;
    const seqFrame = Buffer.alloc(8);
    seqFrame.writeBigUInt64BE(seq);
    const frames: [string, Buffer, Uint8Array] = [this.topic, seqFrame, this.encoder.encode(batch)];
    const epoch = this.#epoch;
    const send = () => {
      if (epoch !== this.#epoch) return; // sent by an engine that has since restarted
      // vLLM buffers a batch right after send_multipart; a batch lost on the wire is still buffered.
      this.#ring.push(seq, frames[2]);
      if (lost) this.dropped++;
      else this.#enqueue(frames);
    };
    if (this.delaySeconds > 0) this.#o.clock.setTimer(this.delaySeconds, send);
    else send();
  }

  /**
   * A restarted vLLM engine: new PUB socket, seq back to 0, empty replay ring, no AllBlocksCleared. The
   * replay socket stays bound (a restarted vLLM binds the same replay_endpoint again); a reply in progress
   * stops.
   */
  async restart(): Promise<void> {
    this.#closePub();
    this.#epoch++;
    this.#ring.clear();
    this.seq = 0n;
    await this.start();
  }

  async close(): Promise<void> {
    this.#closePub();
    this.#epoch++;
    const replay = this.#replay;
    this.#replay = null;
    await replay?.close();
  }

  #closePub(): void {
    this.#queue = [];
    this.#socket?.close();
    this.#socket = null;
    this.#bound = null;
  }

  #enqueue(frames: [string, Buffer, Uint8Array]): void {
    if (this.#socket === null) return;
    this.#queue.push(frames);
    if (!this.#sending) void this.#drain();
  }

  // zeromq.js allows one send in flight per socket.
  async #drain(): Promise<void> {
    this.#sending = true;
    try {
      while (this.#queue.length > 0) {
        const s = this.#socket;
        const frames = this.#queue.shift()!;
        if (s === null) break;
        try {
          await s.send(frames);
          this.sent++;
        } catch {
          // Socket closed under us (restart/shutdown): the batch is lost, like vLLM's on shutdown.
        }
      }
    } finally {
      this.#sending = false;
    }
  }
}
