// The contract between the ext_proc protocol layer and routing: ext-proc/ calls a Router once per request,
// after the complete request body (or at once for body-less requests); routing/ implements it and never
// imports ext-proc/. Everything the Router needs from the wire is in RouteRequest.
import type { EppError } from "../errors.js";

export interface RouteRequest {
  /** `x-request-id` from the client, or a generated UUID (then also set on the request towards the pod). */
  requestId: string;
  /** From the `:method` / `:path` pseudo headers ("" when absent). */
  method: string;
  path: string;
  /** Every request header, lower-case names (pseudo headers included), `raw_value` decoded as UTF-8. */
  headers: ReadonlyMap<string, string>;
  /** The exact request body bytes, complete (empty for body-less requests such as GET /v1/models). */
  body: Buffer;
  /**
   * Endpoints (`ip:port`) from the proxy's metadata `envoy.lb.subset_hint` /
   * `x-gateway-destination-endpoint-subset`, or null when the proxy sent no hint. An empty array means
   * "nothing eligible" (answer 503). Never taken from client headers: a client must not pick its backend.
   */
  subsetHint: readonly string[] | null;
  /**
   * Fires when the stream ends (Envoy or the client gave up) before the answer is written. A router that sees
   * it fired before it records anything (speculative entries, prefix heat, estimated keys, dispatch credit)
   * returns `cancelled` and records nothing: only a request whose answer reaches Envoy may teach it. A request
   * waiting in a flow-control queue leaves it at once.
   */
  signal?: AbortSignal;
  /**
   * Whether `signal` has fired, without making the signal: the stream creates its AbortSignal only when a
   * router reads `signal` (~30 µs each in Node 20), so a router that only needs to check reads this.
   */
  cancelled?: () => boolean;
  /**
   * Calls `listener` once when `signal` fires (at once if it already has), without making the signal: for a
   * router that forwards the request elsewhere (the ext_proc serving thread) and must pass the cancel on.
   */
  onCancel?: (listener: () => void) => void;
}

/**
 * Optional per-request hooks for the response path. Called synchronously from the stream's message
 * handler, in wire order; they must not throw (exceptions are logged and swallowed) and must not block.
 * `onDone` is called exactly once per routed request, also when the stream dies early.
 */
export interface ResponseObserver {
  /**
   * Response headers (lower-case names, `:status` included). `x-gateway-destination-endpoint-served` is set
   * from the response's `envoy.lb` metadata when the proxy sends it there rather than as a header.
   */
  onResponseHeaders?(headers: ReadonlyMap<string, string>): void;
  /** Each response body chunk as Envoy delivered it; the chunk is already on its way back to Envoy. */
  onResponseBody?(chunk: Buffer, endOfStream: boolean): void;
  /** "complete" after the response's end of stream (or trailers); "aborted" if the stream ended first. */
  onDone?(outcome: "complete" | "aborted"): void;
}

export type RouteOutcome =
  | {
      kind: "routed";
      /** Exactly one numeric `ip:port` (or `[v6]:port`): Envoy's ORIGINAL_DST accepts nothing else. */
      endpoint: string;
      /**
       * Ordered fallbacks after `endpoint` (GIE protocol v0.4): sent as `endpoint,fallback1,…` in both the
       * header and the metadata, for gateways that retry down the list. Absent or empty = one endpoint.
       */
      fallbacks?: readonly string[];
      observer?: ResponseObserver;
      /** Optional per-endpoint scores, sent as metadata `envoy.lb` / `x-gateway-destination-endpoint-scores`. */
      endpointScores?: Record<string, unknown>;
    }
  | { kind: "rejected"; error: EppError }
  /** `signal` fired before the decision: nothing recorded, nothing to answer (the stream is gone). */
  | { kind: "cancelled" };

export interface Router {
  /**
   * Picks the endpoint for one request. May run concurrently for many requests. A rejection is returned,
   * not thrown; a thrown exception is answered 500 and logged with its stack (an EppError thrown is
   * answered with its own status).
   */
  route(request: RouteRequest): Promise<RouteOutcome>;
}
