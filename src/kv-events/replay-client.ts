// The client side of vLLM's KV-event replay (shared/reference/vllm-kv-events.md §5): one short-lived DEALER
// per request, connected to the pod's ROUTER (`replay_endpoint`). Sends [b"", start_seq 8B BE] and reads
// replies until the end marker, in either layout:
//   vLLM ≤ 0.25:  ["", seq, payload] …  ["", FF×8, ""]
//   vLLM ≥ 0.26:  ["", topic, seq, payload] …  ["", "", FF×8, ""]
// (A REQ socket would only get the first reply, hence DEALER.) Pure transport: replies are handed over one
// at a time, in order; the caller decodes and applies them. Never throws: every ending is an outcome.
import { setImmediate as yieldToLoop } from "node:timers/promises";
import { Dealer } from "zeromq";

export type ReplayOutcome =
  /** The end marker arrived. */
  | { kind: "complete"; batches: number }
  /** No reply (first or next) within the timeout: no ROUTER there, or it stalled. */
  | { kind: "timeout"; batches: number }
  /** The socket failed, or the peer sent too much garbage to be a vLLM replay socket. */
  | { kind: "failed"; batches: number; reason: string }
  /** `signal` fired (pod restarted or forgotten, shutdown). */
  | { kind: "aborted"; batches: number };

export interface ReplayHandlers {
  /**
   * One replayed batch, in reply order. `topic` only in the ≥ 0.26 layout. A promise (a huge payload decoded
   * in slices) is awaited before the next reply is read, so the order holds.
   */
  onBatch(seq: bigint, payload: Uint8Array, topic: Uint8Array | null): void | Promise<void>;
  /** A reply that is neither a batch nor the end marker (reason: frames | delimiter | seq); skipped. */
  onMalformed(reason: string, detail: string): void;
}

export interface ReplayRequestOptions {
  /** Longest wait for any reply, the first included (vLLM answers between engine steps). */
  timeoutMs: number;
  signal?: AbortSignal;
  /** Garbage tolerated before giving up on the peer. */
  maxMalformed?: number;
  /** Replies accepted before giving up (vLLM's ring is buffer_steps = 10,000 batches by default). */
  maxBatches?: number;
}

const END = 0xffffffffffffffffn;
// Applying replies is synchronous work (~80 µs for a batch of 64 blocks) and queued replies resolve as
// microtasks: yield to the event loop every so many, so a 10,000-batch replay never holds up requests.
const YIELD_EVERY = 32;

export function startSeqFrame(seq: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(seq);
  return b;
}

/** Requests every buffered batch with seq ≥ `start` from the ROUTER at `endpoint`. */
export async function requestReplay(
  endpoint: string,
  start: bigint,
  handlers: ReplayHandlers,
  options: ReplayRequestOptions,
): Promise<ReplayOutcome> {
  // Aborted while queued (restart, pod forgotten, shutdown): no socket for a replay nobody wants.
  if (options.signal?.aborted) return { kind: "aborted", batches: 0 };
  const maxMalformed = options.maxMalformed ?? 100;
  const maxBatches = options.maxBatches ?? 1_000_000;
  const sock = new Dealer({
    linger: 0,
    sendTimeout: options.timeoutMs,
    receiveTimeout: options.timeoutMs,
    receiveHighWaterMark: 100_000,
  });
  let batches = 0;
  let malformed = 0;
  const abort = () => sock.close();
  options.signal?.addEventListener("abort", abort, { once: true });
  try {
    if (options.signal?.aborted) return { kind: "aborted", batches };
    sock.connect(endpoint);
    await sock.send([Buffer.alloc(0), startSeqFrame(start)]);
    for (;;) {
      const frames = await sock.receive();
      const verdict = parseReply(frames);
      if (verdict.kind === "end") return { kind: "complete", batches };
      if (verdict.kind === "bad") {
        handlers.onMalformed(verdict.reason, verdict.detail);
        if (++malformed > maxMalformed)
          return { kind: "failed", batches, reason: `more than ${maxMalformed} malformed replies` };
        continue;
      }
      if (++batches > maxBatches)
        return { kind: "failed", batches, reason: `more than ${maxBatches} replies` };
      const applying = handlers.onBatch(verdict.seq, verdict.payload, verdict.topic);
      if (applying !== undefined) await applying;
      else if (batches % YIELD_EVERY === 0) await yieldToLoop();
      if (options.signal?.aborted) return { kind: "aborted", batches };
    }
  } catch (err) {
    if (options.signal?.aborted) return { kind: "aborted", batches };
    if ((err as { code?: string }).code === "EAGAIN") return { kind: "timeout", batches };
    return { kind: "failed", batches, reason: err instanceof Error ? err.message : String(err) };
  } finally {
    options.signal?.removeEventListener("abort", abort);
    if (!sock.closed) sock.close();
  }
}

type Reply =
  | { kind: "batch"; seq: bigint; payload: Uint8Array; topic: Uint8Array | null }
  | { kind: "end" }
  | { kind: "bad"; reason: string; detail: string };

/** One DEALER message: the ROUTER's empty delimiter, then 2 (≤ 0.25) or 3 (≥ 0.26) frames. */
export function parseReply(frames: readonly Uint8Array[]): Reply {
  if (frames.length !== 3 && frames.length !== 4)
    return { kind: "bad", reason: "frames", detail: `${frames.length} frames, expected 3 or 4` };
  if (frames[0]!.length !== 0)
    return {
      kind: "bad",
      reason: "delimiter",
      detail: `${frames[0]!.length}-byte first frame, expected empty`,
    };
  const withTopic = frames.length === 4;
  const seqFrame = frames[withTopic ? 2 : 1]!;
  if (seqFrame.length !== 8)
    return { kind: "bad", reason: "seq", detail: `${seqFrame.length}-byte sequence frame` };
  const seq = new DataView(seqFrame.buffer, seqFrame.byteOffset, 8).getBigUint64(0);
  if (seq === END) return { kind: "end" };
  return {
    kind: "batch",
    seq,
    payload: frames[withTopic ? 3 : 2]!,
    topic: withTopic ? frames[1]! : null,
  };
}
