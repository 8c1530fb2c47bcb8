// One ext_proc gRPC stream = one downstream HTTP request (request and response phases share it). The
// state machine follows how Envoy drives the stream (reference envoy-ext-proc.md §3.2, §4):
//   FULL_DUPLEX_STREAMED: hold the request-headers answer until the body's end of stream, route, answer
//     the headers (destination + metadata), then stream the body back in ≤ 62,000-byte chunks.
//   BUFFERED: Envoy holds the body until the headers are answered, so answer them at once; the single
//     body message then gets the routing answer.
//   Response phase: every message is answered at once, so SSE is never buffered.
import { randomUUID } from "node:crypto";
import { type ServerDuplexStream, status as grpcStatus } from "@grpc/grpc-js";
import { EppError } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import {
  type BodySendMode,
  headerMapToMap,
  type ProcessingRequest,
  type ProcessingResponse,
} from "./protos.js";
import {
  asEppError,
  continueBodyResponse,
  continueHeadersResponse,
  type Destination,
  immediateErrorResponse,
  routedBufferedBodyResponse,
  routedHeadersResponse,
  SERVED_KEY,
  streamedBodyResponses,
  trailersResponse,
} from "./responses.js";
import type { ResponseObserver, Router } from "./router.js";
import { RoutingCancel } from "./routing-cancel.js";
import { fromValue } from "./struct.js";

export type ExtProcCall = ServerDuplexStream<ProcessingRequest, ProcessingResponse>;

export interface StreamOptions {
  router: Router;
  logger: Logger;
  maxBodyBytes: number;
  /** Body modes assumed when Envoy sends no `protocol_config` (Envoy < 1.34). GIE configures FULL_DUPLEX. */
  defaultRequestBodyMode: BodySendMode;
  defaultResponseBodyMode: BodySendMode;
  /** Once per request: 200 when routed, else the ImmediateResponse status. */
  onOutcome?(status: number): void;
  /** Once per routed request, when its response completed or the stream died. */
  onRequestDone?(outcome: "complete" | "aborted"): void;
  /** Once per stream, when it is over (ended, cancelled or failed). */
  onClose?(): void;
}

const SUBSET_NAMESPACE = "envoy.lb.subset_hint";
const SUBSET_KEY = "x-gateway-destination-endpoint-subset";
const EMPTY = Buffer.alloc(0);

type Phase = "headers" | "body" | "routing" | "routed" | "finished";

export class ExtProcStream {
  readonly #call: ExtProcCall;
  readonly #opts: StreamOptions;
  #phase: Phase = "headers";
  #closed = false;
  #peerHalfClosed = false;
  #requestMode: BodySendMode;
  #responseMode: BodySendMode;
  #requestId: string | null = null;
  #generatedRequestId = false;
  #headers: Map<string, string> = new Map();
  #subsetHint: string[] | null = null;
  #chunks: Buffer[] = [];
  #bodyBytes = 0;
  #hasBody = true; // false when the headers carried end of stream (or Envoy sends no body: mode NONE)
  #requestTrailers = false; // the request ended with trailers: answer them after the body
  #observer: ResponseObserver | undefined;
  #responseDone = false;
  #sawResponseHeaders = false;
  #requestDoneReported = false;
  #log: Logger | undefined;
  /** Aborted when the stream closes while the router decides (it then records nothing). */
  #routing: RoutingCancel | null = null;

  constructor(call: ExtProcCall, options: StreamOptions) {
    this.#call = call;
    this.#opts = options;
    this.#requestMode = options.defaultRequestBodyMode;
    this.#responseMode = options.defaultResponseBodyMode;
    call.on("data", (msg: ProcessingRequest) => this.#onMessage(msg));
    // Envoy ends a stream by half-close then RST (seen as 'end' and/or 'cancelled'): both are normal.
    call.on("end", () => {
      this.#peerHalfClosed = true;
      if (this.#phase !== "routing") this.#close(true);
    });
    call.on("cancelled", () => this.#close(false));
    call.on("error", (err: Error) => {
      this.#logger().debug({ err }, "ext_proc stream error");
      this.#close(false);
    });
  }

  #logger(): Logger {
    this.#log ??= this.#opts.logger.child({ "x-request-id": this.#requestId ?? undefined });
    return this.#log;
  }

  #onMessage(msg: ProcessingRequest): void {
    if (this.#closed || this.#phase === "finished") return;
    try {
      // Observability mode is send-and-go: Envoy ignores every answer, so none is sent.
      if (msg.observability_mode === true) return;
      switch (msg.request) {
        case "request_headers":
          this.#onRequestHeaders(msg);
          return;
        case "request_body":
          this.#onRequestBody(msg.request_body?.body ?? EMPTY, msg.request_body?.end_of_stream === true);
          return;
        case "request_trailers":
          this.#onRequestTrailers();
          return;
        case "response_headers":
          this.#onResponseHeaders(msg);
          return;
        case "response_body":
          this.#onResponseBody(msg.response_body?.body ?? EMPTY, msg.response_body?.end_of_stream === true);
          return;
        case "response_trailers":
          this.#onResponseTrailers();
          return;
        default:
          this.#logger().debug({ request: msg.request }, "ext_proc message without a known request kind");
      }
    } catch (err) {
      this.#fail(err);
    }
  }

  #onRequestHeaders(msg: ProcessingRequest): void {
    if (this.#phase !== "headers") {
      this.#unexpected("request_headers");
      return;
    }
    const pc = msg.protocol_config;
    if (pc?.request_body_mode !== undefined) this.#requestMode = pc.request_body_mode;
    if (pc?.response_body_mode !== undefined) this.#responseMode = pc.response_body_mode;
    this.#headers = headerMapToMap(msg.request_headers?.headers);
    const id = this.#headers.get("x-request-id");
    if (id !== undefined && id !== "") this.#requestId = id;
    else {
      this.#requestId = randomUUID();
      this.#generatedRequestId = true;
    }
    this.#subsetHint = subsetHintOf(msg);
    // No body follows (GET /v1/models), or Envoy will send none (mode NONE): route at once.
    if (msg.request_headers?.end_of_stream === true || this.#requestMode === "NONE") {
      this.#hasBody = false;
      this.#route();
      return;
    }
    switch (this.#requestMode) {
      case "FULL_DUPLEX_STREAMED":
        this.#phase = "body"; // answer deferred until the body's end of stream
        return;
      case "BUFFERED":
      case "BUFFERED_PARTIAL":
        this.#phase = "body";
        this.#write(continueHeadersResponse("request", true));
        return;
      default:
        // STREAMED/GRPC release the headers before the EPP sees the body: routing on the body is impossible.
        this.#reject(
          new EppError(
            "EPP_INTERNAL",
            `unsupported request body mode ${this.#requestMode} (use FULL_DUPLEX_STREAMED)`,
          ),
        );
        return;
    }
  }

  #onRequestBody(chunk: Buffer, endOfStream: boolean): void {
    // Envoy ≥ 1.35 can repeat the EoS chunk of large bodies (envoyproxy/envoy#46237): ignore anything late.
    if (this.#phase !== "body") return;
    if (this.#bodyBytes + chunk.length > this.#opts.maxBodyBytes) {
      this.#chunks = [];
      this.#reject(
        new EppError(
          "EPP_BODY_TOO_LARGE",
          `request body exceeds the limit of ${this.#opts.maxBodyBytes} bytes`,
        ),
      );
      return;
    }
    if (chunk.length > 0) this.#chunks.push(chunk);
    this.#bodyBytes += chunk.length;
    // BUFFERED sends the whole body in one message (EoS false only when trailers follow).
    if (endOfStream || this.#requestMode !== "FULL_DUPLEX_STREAMED") this.#route();
  }

  #onRequestTrailers(): void {
    if (this.#phase === "body") {
      // FULL_DUPLEX with trailers: they replace the EoS chunk and are answered after the body.
      this.#requestTrailers = true;
      this.#route();
      return;
    }
    if (this.#phase === "routing") this.#requestTrailers = true;
    else if (this.#phase === "routed") this.#write(trailersResponse("request"));
  }

  #route(): void {
    this.#phase = "routing";
    const body = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#bodyBytes);
    this.#chunks = [];
    let outcome: ReturnType<Router["route"]>;
    const cancel = new RoutingCancel();
    this.#routing = cancel;
    try {
      outcome = this.#opts.router.route({
        requestId: this.#requestId!,
        method: this.#headers.get(":method") ?? "",
        path: this.#headers.get(":path") ?? "",
        headers: this.#headers,
        body,
        subsetHint: this.#subsetHint,
        get signal() {
          return cancel.signal;
        },
        cancelled: () => cancel.aborted,
        onCancel: (listener) => cancel.onAbort(listener),
      });
    } catch (err) {
      this.#fail(err);
      return;
    }
    outcome.then(
      (result) => {
        this.#routing = null;
        if (result.kind === "cancelled") return; // closed while routing: nothing recorded, nobody to answer
        if (result.kind === "rejected") {
          this.#reject(result.error);
          return;
        }
        this.#observer = result.observer;
        this.#routed(
          { endpoint: result.endpoint, fallbacks: result.fallbacks, endpointScores: result.endpointScores },
          body,
        );
      },
      (err: unknown) => this.#fail(err),
    );
  }

  #routed(destination: Destination, body: Buffer): void {
    this.#phase = "routed";
    this.#opts.onOutcome?.(200);
    if (this.#closed) {
      this.#reportRequestDone("aborted"); // Envoy gave up while we were routing
      return;
    }
    const dest: Destination = this.#generatedRequestId
      ? { ...destination, extraHeaders: [["x-request-id", this.#requestId!]] }
      : destination;
    if (!this.#hasBody) {
      this.#write(routedHeadersResponse(dest));
    } else if (this.#requestMode === "FULL_DUPLEX_STREAMED") {
      this.#write(routedHeadersResponse(dest));
      // Envoy forwards exactly the streamed chunks: the body goes back even when empty (one EoS chunk).
      for (const r of streamedBodyResponses("request", body, !this.#requestTrailers)) this.#write(r);
    } else {
      this.#write(routedBufferedBodyResponse(dest, body));
    }
    if (this.#requestTrailers) this.#write(trailersResponse("request"));
    if (this.#opts.logger.isLevelEnabled("debug")) {
      this.#logger().debug({ endpoint: destination.endpoint, bodyBytes: body.length }, "request routed");
    }
    if (this.#peerHalfClosed) this.#close(true);
  }

  #onResponseHeaders(msg: ProcessingRequest): void {
    if (this.#phase !== "routed") {
      this.#unexpected("response_headers");
      return;
    }
    this.#sawResponseHeaders = true;
    const observer = this.#observer;
    if (observer?.onResponseHeaders !== undefined) {
      const headers = headerMapToMap(msg.response_headers?.headers);
      const served = servedOf(msg);
      if (served !== null && !headers.has(SERVED_KEY)) headers.set(SERVED_KEY, served);
      this.#observe(() => observer.onResponseHeaders?.(headers));
    }
    this.#write(continueHeadersResponse("response"));
    if (msg.response_headers?.end_of_stream === true) this.#responseComplete();
  }

  #onResponseBody(chunk: Buffer, endOfStream: boolean): void {
    if (this.#phase !== "routed" || this.#responseDone) return;
    // Pass through first, observe second: the client's stream never waits on kvpick's bookkeeping.
    if (this.#responseMode === "FULL_DUPLEX_STREAMED") {
      for (const r of streamedBodyResponses("response", chunk, endOfStream)) this.#write(r);
    } else {
      this.#write(continueBodyResponse("response"));
    }
    const observer = this.#observer;
    if (observer?.onResponseBody !== undefined)
      this.#observe(() => observer.onResponseBody?.(chunk, endOfStream));
    if (endOfStream) this.#responseComplete();
  }

  #onResponseTrailers(): void {
    if (this.#phase !== "routed") {
      this.#unexpected("response_trailers");
      return;
    }
    this.#write(trailersResponse("response"));
    this.#responseComplete();
  }

  #responseComplete(): void {
    this.#responseDone = true;
    this.#reportRequestDone("complete");
  }

  #reportRequestDone(outcome: "complete" | "aborted"): void {
    if (this.#requestDoneReported) return;
    this.#requestDoneReported = true;
    this.#opts.onRequestDone?.(outcome);
    const observer = this.#observer;
    if (observer?.onDone !== undefined) this.#observe(() => observer.onDone?.(outcome));
  }

  #observe(hook: () => void): void {
    try {
      hook();
    } catch (err) {
      this.#logger().warn({ err }, "response observer threw; ignored");
    }
  }

  /** Ends the request with an ImmediateResponse (Envoy sends the local reply and closes the stream). */
  #reject(error: EppError): void {
    this.#phase = "finished";
    this.#opts.onOutcome?.(error.httpStatus);
    if (this.#closed) return;
    this.#logger().debug({ code: error.code, status: error.httpStatus }, "request rejected");
    this.#write(immediateErrorResponse(error, this.#requestId));
    this.#close(true);
  }

  #fail(err: unknown): void {
    const error = asEppError(err);
    if (error.code === "EPP_INTERNAL")
      this.#logger().error({ err }, "unexpected failure while handling a request");
    if (this.#phase === "routed") {
      // The routing answer is already out: an ImmediateResponse now would be spurious. Fail the stream.
      this.#close(false);
      return;
    }
    this.#reject(error);
  }

  #unexpected(kind: string): void {
    this.#logger().debug({ kind, phase: this.#phase }, "ext_proc message out of order; ignored");
  }

  #write(response: ProcessingResponse): void {
    if (!this.#closed) this.#call.write(response);
  }

  /** `ok`: finish the call with status OK (after Envoy's half-close or an ImmediateResponse). */
  #close(ok: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#routing?.abort();
    if (this.#phase === "routed" && !this.#responseDone) {
      // With response body mode NONE Envoy sends no body: the headers were the whole response we see.
      const whole = this.#responseMode === "NONE" && this.#sawResponseHeaders;
      this.#reportRequestDone(whole ? "complete" : "aborted");
    }
    if (this.#phase === "routing") this.#routing?.abort();
    else this.#phase = "finished";
    this.#chunks = [];
    if (ok) this.#call.end();
    // grpc-js turns an 'error' event into the call's status; Envoy then fails the request (500).
    else if (!this.#call.cancelled)
      this.#call.emit("error", { code: grpcStatus.INTERNAL, details: "kvpick: stream failed" });
    this.#opts.onClose?.();
  }
}

/** The served endpoint from the response's `envoy.lb` metadata (GIE protocol v1.0), or null. */
function servedOf(msg: ProcessingRequest): string | null {
  const value = msg.metadata_context?.filter_metadata?.["envoy.lb"]?.fields?.[SERVED_KEY];
  if (value === undefined) return null;
  const plain = fromValue(value);
  return typeof plain === "string" && plain !== "" ? plain : null;
}

function subsetHintOf(msg: ProcessingRequest): string[] | null {
  const ns = msg.metadata_context?.filter_metadata?.[SUBSET_NAMESPACE];
  const value = ns?.fields?.[SUBSET_KEY];
  if (value === undefined) return null;
  const plain = fromValue(value);
  // The protocol sends a list of `ip:port`; a comma-joined string is accepted too.
  const items = Array.isArray(plain) ? plain : typeof plain === "string" ? plain.split(",") : [];
  return items
    .filter((x): x is string => typeof x === "string")
    .map((x) => x.trim())
    .filter((x) => x !== "");
}
