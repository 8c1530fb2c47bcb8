// Loads kvpick's own wire-compatible protos (proto/) with @grpc/proto-loader at runtime and declares the
// decoded shapes kvpick touches. Loader options follow grpc-js practice: keepCase (snake_case fields as
// on the wire), enums as strings, no defaults (unset fields are absent), virtual oneof properties
// (`req.request === "request_body"`), bytes as Buffer. google.protobuf.Struct/Value come from
// protobufjs' bundled descriptors and keep camelCase names (`structValue`, `stringValue`) even with
// keepCase — see struct.ts.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
};

/** proto/ at the repository root, found from src/ext-proc (tsx) or dist/src/ext-proc (compiled). */
export const PROTO_DIR = ((): string => {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const up of ["../..", "../../.."]) {
    const dir = join(here, up, "proto");
    if (existsSync(join(dir, "envoy/service/ext_proc/v3/external_processor.proto"))) return dir;
  }
  throw new Error(`kvpick: proto/ directory not found above ${here}`);
})();

export const EXT_PROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor";
export const HEALTH_SERVICE = "grpc.health.v1.Health";

/** Loads a proto package; `options` lets the test client choose e.g. numeric enums. */
export function loadProtos(options: protoLoader.Options = LOADER_OPTIONS): grpc.GrpcObject {
  const definition = protoLoader.loadSync(
    ["envoy/service/ext_proc/v3/external_processor.proto", "grpc/health/v1/health.proto"],
    { ...options, includeDirs: [PROTO_DIR] },
  );
  return grpc.loadPackageDefinition(definition);
}

/** Service definition of `name` (dotted) inside a loaded package. */
export function serviceOf(pkg: grpc.GrpcObject, name: string): grpc.ServiceClientConstructor {
  let node: unknown = pkg;
  for (const part of name.split(".")) node = (node as Record<string, unknown>)[part];
  if (typeof node !== "function") throw new Error(`kvpick: service ${name} missing from protos`);
  return node as grpc.ServiceClientConstructor;
}

// ---- decoded shapes (only what kvpick reads or writes) ----

export interface HeaderValue {
  key?: string;
  value?: string;
  raw_value?: Buffer;
}
export interface HeaderMap {
  headers?: HeaderValue[];
}
export interface HeaderValueOption {
  header?: HeaderValue;
  append?: { value?: boolean };
  append_action?:
    | "APPEND_IF_EXISTS_OR_ADD"
    | "ADD_IF_ABSENT"
    | "OVERWRITE_IF_EXISTS_OR_ADD"
    | "OVERWRITE_IF_EXISTS";
  keep_empty_value?: boolean;
}
export interface HeaderMutation {
  set_headers?: HeaderValueOption[];
  remove_headers?: string[];
}
export interface HttpHeaders {
  headers?: HeaderMap;
  end_of_stream?: boolean;
}
export interface HttpBody {
  body?: Buffer;
  end_of_stream?: boolean;
}
export interface HttpTrailers {
  trailers?: HeaderMap;
}
export type BodySendMode =
  | "NONE"
  | "STREAMED"
  | "BUFFERED"
  | "BUFFERED_PARTIAL"
  | "FULL_DUPLEX_STREAMED"
  | "GRPC";

/** google.protobuf.Struct as protobufjs decodes it (camelCase value kinds). */
export interface StructValue {
  nullValue?: string | number;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: Struct;
  listValue?: { values?: StructValue[] };
  kind?: string;
}
export interface Struct {
  fields?: Record<string, StructValue>;
}

export interface ProcessingRequest {
  request?:
    | "request_headers"
    | "response_headers"
    | "request_body"
    | "response_body"
    | "request_trailers"
    | "response_trailers";
  request_headers?: HttpHeaders;
  response_headers?: HttpHeaders;
  request_body?: HttpBody;
  response_body?: HttpBody;
  request_trailers?: HttpTrailers;
  response_trailers?: HttpTrailers;
  metadata_context?: { filter_metadata?: Record<string, Struct> };
  observability_mode?: boolean;
  protocol_config?: {
    request_body_mode?: BodySendMode;
    response_body_mode?: BodySendMode;
    send_body_without_waiting_for_header_response?: boolean;
  };
}

export interface CommonResponse {
  status?: "CONTINUE" | "CONTINUE_AND_REPLACE";
  header_mutation?: HeaderMutation;
  body_mutation?: {
    body?: Buffer;
    clear_body?: boolean;
    streamed_response?: { body?: Buffer; end_of_stream?: boolean };
  };
  clear_route_cache?: boolean;
}
export interface ImmediateResponse {
  status?: { code?: number | string };
  headers?: HeaderMutation;
  body?: Buffer;
  grpc_status?: { status?: number };
  details?: string;
}
export interface ProcessingResponse {
  response?: string;
  request_headers?: { response?: CommonResponse };
  response_headers?: { response?: CommonResponse };
  request_body?: { response?: CommonResponse };
  response_body?: { response?: CommonResponse };
  request_trailers?: { header_mutation?: HeaderMutation };
  response_trailers?: { header_mutation?: HeaderMutation };
  immediate_response?: ImmediateResponse;
  dynamic_metadata?: Struct;
}

/** Lower-cased header names → values; Envoy ≥ 1.27 sends `raw_value`, older versions `value`. */
export function headerMapToMap(map: HeaderMap | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const h of map?.headers ?? []) {
    if (h.key === undefined) continue;
    const raw = h.raw_value;
    out.set(
      h.key.toLowerCase(),
      raw !== undefined && raw.length > 0 ? raw.toString("utf8") : (h.value ?? ""),
    );
  }
  return out;
}
