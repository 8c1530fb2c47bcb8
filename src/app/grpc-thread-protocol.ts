// The messages between the ext_proc serving thread (grpc-thread-entry.ts) and the main thread that hosts the
// real Router (grpc-thread.ts), and the outbox both sides send them through. Messages are plain objects
// (structured clone); a request body travels as a transferred ArrayBuffer, never cloned.
import type { MessagePort } from "node:worker_threads";
import type { ErrorCode } from "../errors.js";
import type { BodySendMode } from "../ext-proc/protos.js";

/** What the thread needs to build its server (workerData). */
export interface ThreadServerOptions {
  grpcPort: number;
  healthPort: number;
  host: string | undefined;
  secureServing: boolean;
  certPath: string | null | undefined;
  maxBodyBytes: number;
  defaultRequestBodyMode: BodySendMode | undefined;
  defaultResponseBodyMode: BodySendMode | undefined;
  /** The main logger's level and child bindings: the thread's lines carry the same fields. */
  logLevel: string;
  logBindings: Record<string, unknown>;
}

/** ResponseObserver hooks the main thread's observer has (the thread forwards only these). */
export const HOOK_HEADERS = 1;
export const HOOK_BODY = 2;

export type WireOutcome =
  | {
      kind: "routed";
      endpoint: string;
      fallbacks?: readonly string[] | undefined;
      endpointScores?: Record<string, unknown> | undefined;
      /** HOOK_* bits; 0 = no observer. With any bit set the thread also reports onDone. */
      hooks: number;
    }
  | { kind: "rejected"; code: ErrorCode; message: string }
  | { kind: "cancelled" }
  /** The router threw or rejected: `code` when it was an EppError. */
  | { kind: "thrown"; code: ErrorCode | null; message: string; stack: string | undefined };

/** Serving thread → main thread. */
export type ToMain =
  | { t: "started"; grpcPort: number; healthPort: number }
  | { t: "startFailed"; message: string; stack: string | undefined }
  | { t: "stopped" }
  | { t: "log"; line: string }
  | { t: "ready?"; id: number }
  /** ExtProcRecorder calls, in order: o = streamOpened, c = streamClosed, a = answered(s), d = responseDone. */
  | { t: "o" }
  | { t: "c" }
  | { t: "a"; s: number }
  | { t: "d" }
  | {
      t: "route";
      id: number;
      requestId: string;
      method: string;
      path: string;
      headers: Map<string, string>;
      body: ArrayBuffer;
      subsetHint: string[] | null;
    }
  | { t: "cancel"; id: number }
  | { t: "rh"; id: number; headers: Map<string, string> }
  | { t: "rb"; id: number; chunk: ArrayBuffer; eos: boolean }
  | { t: "done"; id: number; outcome: "complete" | "aborted" };

/** Main thread → serving thread. */
export type ToThread =
  | { t: "outcome"; id: number; o: WireOutcome }
  | { t: "ready"; id: number; value: boolean }
  | { t: "stop"; graceMs: number };

/**
 * Queues messages and posts them as one array per event-loop turn (setImmediate), in order: under load one
 * postMessage carries many requests' messages. `flush()` posts at once (a readiness ask must not wait).
 */
export class Outbox<M> {
  readonly #port: Pick<MessagePort, "postMessage">;
  #queue: M[] = [];
  #transfer: ArrayBuffer[] = [];
  #scheduled = false;

  constructor(port: Pick<MessagePort, "postMessage">) {
    this.#port = port;
  }

  send(message: M, transfer?: ArrayBuffer): void {
    this.#queue.push(message);
    if (transfer !== undefined && transfer.byteLength > 0) this.#transfer.push(transfer);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  flush(): void {
    this.#scheduled = false;
    if (this.#queue.length === 0) return;
    const queue = this.#queue;
    const transfer = this.#transfer;
    this.#queue = [];
    this.#transfer = [];
    this.#port.postMessage(queue, transfer);
  }
}

/**
 * The bytes in a fresh ArrayBuffer of their own, to transfer: one copy, not zero-filled first (the sender
 * keeps its Buffer: the serving thread echoes the body to Envoy after routing). Never a view into Node's
 * pooled slab, which would transfer (detach) the other Buffers sharing it.
 */
export function ownedCopy(bytes: Uint8Array): ArrayBuffer {
  const out = Buffer.allocUnsafeSlow(bytes.byteLength);
  out.set(bytes);
  return out.buffer as ArrayBuffer;
}
