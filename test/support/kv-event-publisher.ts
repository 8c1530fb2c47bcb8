// A vLLM-format KV-event publisher for tests and benchmarks: encodes batches the way msgspec does in each
// event layout (shared/reference/vllm-kv-events.md §4: array_like structs with all fields, shortest int
// forms, float64 ts, maps omitting None optionals) and sends them on a real ZeroMQ PUB socket as
// [topic, 8-byte big-endian seq, payload], binding or connecting like vLLM's ZmqEventPublisher.
import { Publisher } from "zeromq";
import type { SimBlockRemoved, SimBlockStored, SimKvEvent } from "../../src/sim/kv-event.js";
import { type EventLayout, KvEventEncoder } from "../../src/sim/kv-event-encoder.js";

// The events and layouts are the simulator's (src/sim/kv-event.ts, kv-event-encoder.ts): one encoder of
// vLLM's layouts for the simulated engine and the tests.
export type Layout = EventLayout;
export type StoredSpec = SimBlockStored;
export type RemovedSpec = SimBlockRemoved;
export type ClearedSpec = { type: "AllBlocksCleared" };
export type EventSpec = SimKvEvent;

export interface BatchOptions {
  layout?: Layout;
  ts?: number;
  /** Data-parallel rank; omitted from the batch in the v0.9.0 layout. */
  rank?: number;
  /** Outer batch as a map (one upstream revision declares it so). */
  outerMap?: boolean;
}

export function encodeBatch(events: readonly EventSpec[], options: BatchOptions = {}): Uint8Array {
  return new KvEventEncoder({
    layout: options.layout ?? "v0.10.0",
    dataParallelRank: options.rank ?? 0,
    outerMap: options.outerMap ?? false,
  }).encode({ ts: options.ts ?? 1753315200.25, events });
}

export function seqFrame(seq: bigint | number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(seq));
  return b;
}

export interface PublisherOptions extends BatchOptions {
  topic: string;
  /** First sequence number (vLLM: 0; llm-d-inference-sim: 1). */
  firstSeq?: bigint;
}

export class KvEventPublisher {
  readonly socket = new Publisher({ linger: 0, sendHighWaterMark: 100_000 });
  readonly options: PublisherOptions;
  /** The next sequence number to send. */
  seq: bigint;

  constructor(options: PublisherOptions) {
    this.options = options;
    this.seq = options.firstSeq ?? 0n;
  }

  /** Binds like vLLM with endpoint `tcp://*:5557` (connect-mode subscribers dial it); returns the address. */
  async bind(endpoint = "tcp://127.0.0.1:*"): Promise<string> {
    await this.socket.bind(endpoint);
    return this.socket.lastEndpoint!;
  }

  /** Dials a bind-mode subscriber, like vLLM with endpoint `tcp://<epp>:5557`. */
  connect(endpoint: string): void {
    this.socket.connect(endpoint);
  }

  /** Sends one batch with the next seq; returns the seq used. */
  async publish(events: readonly EventSpec[], options: BatchOptions = {}): Promise<bigint> {
    const seq = this.seq++;
    await this.sendRaw([
      this.options.topic,
      seqFrame(seq),
      encodeBatch(events, { ...this.options, ...options }),
    ]);
    return seq;
  }

  /** Sends a payload encoded beforehand (encodeBatch) with the next seq: a benchmark keeps encoding out of
   * its measured window. Returns the seq used. */
  async publishEncoded(payload: Uint8Array): Promise<bigint> {
    const seq = this.seq++;
    await this.sendRaw([this.options.topic, seqFrame(seq), payload]);
    return seq;
  }

  async sendRaw(frames: (string | Uint8Array)[]): Promise<void> {
    await this.socket.send(frames);
  }

  /**
   * Defeats ZeroMQ's slow joiner (messages sent before the subscription reaches the PUB are dropped):
   * sends empty batches every 10 ms until `ready()` is true or `timeoutMs` passes. A subscriber takes the
   * first seq it sees as the start, so these warm-up batches cause no gap.
   */
  async publishUntil(ready: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      if (Date.now() > deadline) throw new Error(`subscriber not receiving after ${timeoutMs} ms`);
      await this.publish([]);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  close(): void {
    this.socket.close();
  }
}
