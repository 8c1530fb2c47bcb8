// A hand-driven stand-in for vLLM's replay ROUTER, for tests that need to control what a replay answers
// and when: it records every request ([identity, "", start_seq]) and replies only when told, with any
// frames (valid batches, end markers, garbage).
import { Router } from "zeromq";

export interface ReplayRequest {
  identity: Buffer;
  /** All frames after the identity, as received. */
  frames: Buffer[];
  /** start_seq when the request is well formed, else null. */
  start: bigint | null;
}

export const END_SEQ = Buffer.alloc(8, 0xff);

export class FakeReplayRouter {
  readonly requests: ReplayRequest[] = [];
  readonly socket = new Router({ linger: 0 });
  #loop: Promise<void> | null = null;

  /** Binds (default a free loopback port); returns the address. */
  async bind(endpoint = "tcp://127.0.0.1:*"): Promise<string> {
    await this.socket.bind(endpoint);
    this.#loop = (async () => {
      try {
        for await (const [identity, ...frames] of this.socket) {
          const ok = frames.length === 2 && frames[0]!.length === 0 && frames[1]!.length === 8;
          this.requests.push({
            identity: identity!,
            frames,
            start: ok ? frames[1]!.readBigUInt64BE() : null,
          });
        }
      } catch {
        // closed
      }
    })();
    return this.socket.lastEndpoint!;
  }

  /** Sends one reply message to the requester: the identity is prepended. */
  async reply(request: ReplayRequest, frames: (Buffer | Uint8Array | string)[]): Promise<void> {
    await this.socket.send([request.identity, ...frames]);
  }

  /** Replies with batches in the ≤ 0.25 layout, then the end marker. */
  async replyAll(request: ReplayRequest, batches: { seq: bigint; payload: Uint8Array }[]): Promise<void> {
    for (const b of batches) {
      const seq = Buffer.alloc(8);
      seq.writeBigUInt64BE(b.seq);
      await this.reply(request, ["", seq, b.payload]);
    }
    await this.reply(request, ["", END_SEQ, ""]);
  }

  async close(): Promise<void> {
    this.socket.close();
    await this.#loop;
  }
}
