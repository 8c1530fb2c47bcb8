// vLLM's KV-event replay socket, simulated (shared/reference/vllm-kv-events.md §5): a ZeroMQ ROUTER, always
// bound (vLLM's `replay_endpoint`), answering `[identity, "", start_seq 8B BE]` with every buffered batch
// whose seq ≥ start_seq, then an end marker (END_SEQ = −1 as 8 bytes BE = FF×8). Two reply layouts:
// - "v0.10" (vLLM ≤ 0.25): [identity, "", seq, payload] … [identity, "", FF×8, ""]
// - "v0.26" (vllm-project/vllm#45177): [identity, "", topic, seq, payload] … [identity, "", "", FF×8, ""]
// Anything else is logged and ignored, as vLLM does. Requests are served one at a time, in arrival order
// (vLLM serves them from its single publisher thread). Like vLLM's (`ZmqEventPublisher`), the ROUTER sets no
// socket option: ZeroMQ's default send high-water mark (1,000 messages) and no `mandatory`, so what exceeds
// the peer's queue is dropped without a word — the tail of a long replay, end marker included. kvpick must
// (and does) resume such a replay; `dropTailAfter` cuts every reply deterministically for tests.
import { setImmediate as yieldToLoop } from "node:timers/promises";
import { Router } from "zeromq";
import type { Logger } from "../observability/logger.js";
import type { RingEntry } from "./replay-ring.js";

export const REPLAY_LAYOUTS = ["v0.10", "v0.26"] as const;
export type ReplayLayout = (typeof REPLAY_LAYOUTS)[number];

const END_SEQ = Buffer.alloc(8, 0xff);
const EMPTY = Buffer.alloc(0);

/** What the server replays: the publisher's ring, and an epoch that changes when the engine restarts. */
export interface ReplaySource {
  readonly topic: string;
  /** Buffered batches with seq ≥ start, oldest first. */
  snapshot(start: bigint): RingEntry[];
  /** Bumped by a restart: a reply in progress for an older epoch stops (the old process is gone). */
  readonly epoch: number;
}

export interface ReplayServerOptions {
  /** e.g. tcp://127.0.0.1:5558 or tcp://*:5558; a `:*` port binds a free one. */
  endpoint: string;
  layout: ReplayLayout;
  source: ReplaySource;
  logger: Logger;
}

export class SimReplayServer {
  /** Requests answered (end marker sent) and requests ignored as invalid. */
  served = 0;
  invalid = 0;
  /** Start seqs of the last requests (at most 100), oldest first. */
  readonly starts: bigint[] = [];
  /** Fault: send at most this many batches per reply, then nothing (no end marker); 0 = off. */
  dropTailAfter = 0;
  readonly #o: ReplayServerOptions;
  readonly #router: Router;
  #loop: Promise<void> | null = null;

  constructor(options: ReplayServerOptions) {
    this.#o = options;
    // vLLM's options: none but linger (the HWM stays 1,000 and a full queue drops, as in production).
    this.#router = new Router({ linger: 0 });
  }

  /** Binds; returns the resolved address. */
  async start(): Promise<string> {
    await this.#router.bind(this.#o.endpoint);
    this.#loop = this.#serveAll();
    return this.endpoint!;
  }

  get endpoint(): string | null {
    return this.#router.lastEndpoint ?? null;
  }

  async close(): Promise<void> {
    this.#router.close();
    await this.#loop;
  }

  async #serveAll(): Promise<void> {
    try {
      for await (const msg of this.#router) await this.#serve(msg);
    } catch (err) {
      if (!this.#router.closed) this.#o.logger.warn({ err }, "sim replay socket failed");
    }
  }

  async #serve(msg: Buffer[]): Promise<void> {
    const [identity, delimiter, start] = msg;
    if (msg.length !== 3 || delimiter!.length !== 0 || start!.length !== 8) {
      this.invalid++;
      this.#o.logger.warn({ frames: msg.length }, "sim replay: invalid request ignored");
      return;
    }
    const { source, layout } = this.#o;
    const epoch = source.epoch;
    const from = start!.readBigUInt64BE();
    this.starts.push(from);
    if (this.starts.length > 100) this.starts.shift();
    const entries = source.snapshot(from);
    const cut = this.dropTailAfter;
    const topic = Buffer.from(source.topic);
    try {
      let sent = 0;
      for (const e of entries) {
        // vLLM replies from its own thread; here the pod shares the event loop with others (demo, tests).
        if (++sent % 256 === 0) await yieldToLoop();
        if (source.epoch !== epoch) return; // restarted mid-reply: the old process would be gone
        if (cut > 0 && sent > cut) return; // the tail, end marker included, never leaves
        const seq = Buffer.alloc(8);
        seq.writeBigUInt64BE(e.seq);
        await this.#router.send(
          layout === "v0.10" ? [identity!, EMPTY, seq, e.payload] : [identity!, EMPTY, topic, seq, e.payload],
        );
      }
      await this.#router.send(
        layout === "v0.10" ? [identity!, EMPTY, END_SEQ, EMPTY] : [identity!, EMPTY, EMPTY, END_SEQ, EMPTY],
      );
      this.served++;
    } catch (err) {
      // The socket closed: drop this reply (a requester that went away is dropped silently by ZeroMQ).
      if (!this.#router.closed) this.#o.logger.debug({ err }, "sim replay: reply abandoned");
    }
  }
}
