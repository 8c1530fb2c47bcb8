// vLLM's ZmqEventPublisher, simulated: one PUB socket per pod, one multipart message per engine step
// [topic, 8-byte big-endian seq starting at 0, msgspec payload]. Connects to `endpoint` (the EPP binds,
// reference deployment) or binds it (the EPP connects), per vLLM's rule: bind when the endpoint contains
// `*` or `::` or is ipc/inproc. Fault knobs: drop a fraction of batches (the seq is consumed, as when
// vLLM's send raises → a gap replay cannot fill), delay every batch, restart (new socket, seq back to 0).
import { Publisher } from "zeromq";
import type { SimClock } from "./clock.js";
import { type EncodeOptions, KvEventEncoder } from "./kv-event-encoder.js";
import type { SimEventBatch } from "./kv-event.js";
import { type Rng, seededRng } from "./random.js";

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

  constructor(options: PublisherOptions) {
    this.#o = options;
    this.topic = options.topic;
    this.encoder = new KvEventEncoder(options);
    this.dropFraction = options.dropFraction ?? 0;
    this.delaySeconds = options.delaySeconds ?? 0;
    this.#rng = options.rng ?? seededRng(1);
  }

  /** The resolved bound address in bind mode, else null. */
  get boundEndpoint(): string | null {
    return this.#bound;
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
  }

  /** Queues one step's batch; frames leave in order. */
  publish(batch: SimEventBatch): void {
    const seq = this.seq++;
    if (this.dropFraction > 0 && this.#rng() < this.dropFraction) {
      this.dropped++;
      return;
    }
    const seqFrame = Buffer.alloc(8);
    seqFrame.writeBigUInt64BE(seq);
    const frames: [string, Buffer, Uint8Array] = [this.topic, seqFrame, this.encoder.encode(batch)];
    if (this.delaySeconds > 0) this.#o.clock.setTimer(this.delaySeconds, () => this.#enqueue(frames));
    else this.#enqueue(frames);
  }

  /** A restarted vLLM engine: new socket, seq back to 0, nothing replayed, no AllBlocksCleared. */
  async restart(): Promise<void> {
    this.close();
    this.seq = 0n;
    await this.start();
  }

  close(): void {
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
