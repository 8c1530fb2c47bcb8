// Builds every ProcessingResponse kvpick sends. Envoy facts encoded here (reference envoy-ext-proc.md):
// header values go in `raw_value` only (a `value` too is an error, `value` alone an empty header); `append`
// stays unset so a client-sent destination header is overwritten (`append_action` is ignored by ext_proc,
// set anyway for proxies that honour it); FULL_DUPLEX body answers must be `streamed_response` chunks,
// ≤ 62,000 bytes each as GIE sends them; dynamic metadata lives in namespace `envoy.lb`.
import { EppError } from "../errors.js";
import type { HeaderMutation, HeaderValueOption, ProcessingResponse } from "./protos.js";
import { toStruct } from "./struct.js";

export const DESTINATION_HEADER = "x-gateway-destination-endpoint";
/** The endpoint that really served (proxy → EPP, response path; GIE protocol v1.0). */
export const SERVED_KEY = "x-gateway-destination-endpoint-served";
export const SCORES_METADATA_KEY = "x-gateway-destination-endpoint-scores";
export const LB_NAMESPACE = "envoy.lb";
/** GIE's BodyByteLimit (pkg/common/envoy/chunking.go): under Envoy's 64 KiB recommendation. */
export const BODY_CHUNK_BYTES = 62_000;

export type Direction = "request" | "response";

export function setHeader(key: string, value: string): HeaderValueOption {
  return {
    header: { key, raw_value: Buffer.from(value, "utf8") },
    append_action: "OVERWRITE_IF_EXISTS_OR_ADD",
  };
}

export interface Destination {
  endpoint: string;
  /** Ordered fallbacks after `endpoint`: the value becomes `endpoint,fallback1,…` (header and metadata alike). */
  fallbacks?: readonly string[] | undefined;
  /** Extra headers to set towards the pod (e.g. a generated x-request-id). */
  extraHeaders?: ReadonlyArray<readonly [string, string]>;
  endpointScores?: Record<string, unknown> | undefined;
}

/** The protocol's destination value: one `ip:port`, or the ordered comma list (no spaces) with fallbacks. */
export function destinationValue(dest: Destination): string {
  const fallbacks = dest.fallbacks ?? [];
  return fallbacks.length === 0 ? dest.endpoint : [dest.endpoint, ...fallbacks].join(",");
}

function destinationMutation(dest: Destination, contentLength?: number): HeaderMutation {
  const set = [setHeader(DESTINATION_HEADER, destinationValue(dest))];
  for (const [k, v] of dest.extraHeaders ?? []) set.push(setHeader(k, v));
  // Envoy skips content-length in FULL_DUPLEX; BUFFERED checks it against a mutated body.
  if (contentLength !== undefined) set.push(setHeader("content-length", String(contentLength)));
  return { set_headers: set };
}

function destinationMetadata(dest: Destination) {
  const lb: Record<string, unknown> = { [DESTINATION_HEADER]: destinationValue(dest) };
  if (dest.endpointScores !== undefined) lb[SCORES_METADATA_KEY] = dest.endpointScores;
  return toStruct({ [LB_NAMESPACE]: lb });
}

/** FULL_DUPLEX (and body-less requests): the deferred request-headers answer that routes the request. */
export function routedHeadersResponse(dest: Destination): ProcessingResponse {
  return {
    request_headers: { response: { header_mutation: destinationMutation(dest), clear_route_cache: true } },
    dynamic_metadata: destinationMetadata(dest),
  };
}

/** BUFFERED: the routing answer rides on the body response; the body is sent back unchanged. */
export function routedBufferedBodyResponse(dest: Destination, body: Buffer): ProcessingResponse {
  return {
    request_body: {
      response: {
        header_mutation: destinationMutation(dest, body.length),
        body_mutation: { body },
        clear_route_cache: true,
      },
    },
    dynamic_metadata: destinationMetadata(dest),
  };
}

/** BUFFERED: Envoy holds the body until the headers are answered, so they are answered at once. */
export function continueHeadersResponse(direction: Direction, clearRouteCache = false): ProcessingResponse {
  const response = clearRouteCache ? { clear_route_cache: true } : {};
  return direction === "request" ? { request_headers: { response } } : { response_headers: { response } };
}

/** Non-FULL_DUPLEX body answer that leaves the chunk unchanged. */
export function continueBodyResponse(direction: Direction): ProcessingResponse {
  return direction === "request" ? { request_body: { response: {} } } : { response_body: { response: {} } };
}

export function trailersResponse(direction: Direction): ProcessingResponse {
  return direction === "request" ? { request_trailers: {} } : { response_trailers: {} };
}

/** One FULL_DUPLEX `streamed_response` carrying `chunk` (≤ BODY_CHUNK_BYTES). */
export function streamedBodyResponse(
  direction: Direction,
  chunk: Buffer,
  endOfStream: boolean,
): ProcessingResponse {
  const response = { body_mutation: { streamed_response: { body: chunk, end_of_stream: endOfStream } } };
  return direction === "request" ? { request_body: { response } } : { response_body: { response } };
}

/**
 * `body` re-chunked into streamed responses of ≤ BODY_CHUNK_BYTES; `endOfStream` goes on the last one.
 * An empty body with end of stream is one empty chunk (Envoy needs the EoS); without it, nothing.
 */
export function streamedBodyResponses(
  direction: Direction,
  body: Buffer,
  endOfStream: boolean,
): ProcessingResponse[] {
  if (body.length === 0) return endOfStream ? [streamedBodyResponse(direction, body, true)] : [];
  const out: ProcessingResponse[] = [];
  for (let at = 0; at < body.length; at += BODY_CHUNK_BYTES) {
    const end = Math.min(at + BODY_CHUNK_BYTES, body.length);
    out.push(streamedBodyResponse(direction, body.subarray(at, end), endOfStream && end === body.length));
  }
  return out;
}

// GIE's error code names (pkg/common/error/error.go) by HTTP status; kvpick's 413 has no GIE equivalent.
const GIE_CODE: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  413: "PayloadTooLarge",
  429: "ResourceExhausted",
  503: "ServiceUnavailable",
};
// OpenAI error `type`s, so OpenAI SDK clients classify the error as they would OpenAI's own.
const OPENAI_TYPE: Record<number, string> = {
  400: "invalid_request_error",
  404: "not_found_error",
  413: "invalid_request_error",
  429: "rate_limit_error",
  503: "service_unavailable_error",
};

export function gieCodeOf(status: number): string {
  return GIE_CODE[status] ?? "Internal";
}

/** The JSON body: `{"error":{"message","type","code"}}`, message in GIE's `inference error: <Code> - <msg>`. */
export function errorBody(error: EppError): Buffer {
  const message = `inference error: ${gieCodeOf(error.httpStatus)} - ${error.message}`;
  const type = OPENAI_TYPE[error.httpStatus] ?? "server_error";
  return Buffer.from(JSON.stringify({ error: { message, type, code: error.code } }), "utf8");
}

/** A local reply ending the request: status, JSON body, content-type, x-request-id, retry-after on 429/503. */
export function immediateErrorResponse(error: EppError, requestId: string | null): ProcessingResponse {
  const headers = [setHeader("content-type", "application/json")];
  if (requestId !== null) headers.push(setHeader("x-request-id", requestId));
  if (error.httpStatus === 429 || error.httpStatus === 503) headers.push(setHeader("retry-after", "1"));
  return {
    immediate_response: {
      status: { code: error.httpStatus },
      headers: { set_headers: headers },
      body: errorBody(error),
      // %RESPONSE_CODE_DETAILS% in Envoy's access log; Envoy replaces whitespace with `_`.
      details: `kvpick_${error.code.toLowerCase()}`,
    },
  };
}

/** Any thrown value → an EppError (unknown failures are 500 EPP_INTERNAL; the caller logs the stack). */
export function asEppError(err: unknown): EppError {
  if (err instanceof EppError) return err;
  return new EppError("EPP_INTERNAL", "internal error while routing the request", { cause: err });
}
