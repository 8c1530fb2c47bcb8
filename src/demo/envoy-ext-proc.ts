// The Envoy side of the ext_proc protocol, written once for the two things that play Envoy against kvpick:
// the demo's proxy (envoy-front.ts) and the tests' scripted client (test/support/envoy-client.ts). What
// Envoy does here is fixed by its ext_proc filter (reference envoy-ext-proc.md): header values travel in
// `raw_value`; a mutation's `value` is never used (alone it yields an empty header, with `raw_value` it is
// an error); `append` unset or false overwrites; header names are lowercase.
import * as grpc from "@grpc/grpc-js";
import {
  EXT_PROC_SERVICE,
  type HeaderMap,
  type HeaderMutation,
  LOADER_OPTIONS,
  loadProtos,
  type ProcessingRequest,
  type ProcessingResponse,
  serviceOf,
} from "../ext-proc/protos.js";

/** One ext_proc stream as Envoy holds it: it writes ProcessingRequests, reads ProcessingResponses. */
export type ExtProcCall = grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse>;

/** An ext_proc client configured like Envoy's EPP cluster. */
export class EnvoyExtProcClient {
  readonly #client: grpc.Client;

  constructor(address: string, options: { tls?: boolean } = {}) {
    // Numeric enums: HTTP status codes are read as numbers, independent of kvpick's choice.
    const Service = serviceOf(loadProtos({ ...LOADER_OPTIONS, enums: Number }), EXT_PROC_SERVICE);
    // Like Envoy's EPP cluster: TLS without verifying the (self-signed) certificate.
    const creds = options.tls
      ? grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false })
      : grpc.credentials.createInsecure();
    this.#client = new Service(address, creds, {
      // Envoy sends no SNI to the EPP by default; an IP as TLS server name is invalid (RFC 6066).
      ...(options.tls ? { "grpc.ssl_target_name_override": "kvpick" } : {}),
      "grpc.max_receive_message_length": -1,
      "grpc.max_send_message_length": -1,
      // Envoy's HTTP/2 windows default to 256 MiB; grpc-js' 64 KiB would throttle echoed bodies.
      "grpc-node.flow_control_window": 64 << 20,
    });
  }

  /** Opens one stream (Envoy opens one per downstream HTTP request). */
  open(): ExtProcCall {
    return (this.#client as unknown as { Process(): ExtProcCall }).Process();
  }

  async waitForReady(timeoutMs = 5_000): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      this.#client.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve())),
    );
  }

  close(): void {
    this.#client.close();
  }
}

/** Headers (or trailers) as Envoy sends them: every value as `raw_value` bytes. */
export function headerMap(h: Iterable<[string, string]>): HeaderMap {
  return { headers: [...h].map(([key, v]) => ({ key, raw_value: Buffer.from(v, "utf8") })) };
}

/** One header a mutation set, as applied. */
export interface AppliedHeader {
  key: string;
  value: string;
  append: boolean | undefined;
  appendAction: unknown;
}

/**
 * Applies a header mutation to `target` as Envoy does; returns the rules the mutation broke (empty when
 * Envoy would accept it as is). `skip(key)` names headers Envoy ignores in the current mode (it drops
 * `content-length` when it streams the body); `onSet` sees each header the mutation sets, skipped or not.
 */
export function applyHeaderMutation(
  target: Map<string, string>,
  mutation: HeaderMutation | undefined,
  options: { skip?: (key: string) => boolean; onSet?: (h: AppliedHeader) => void } = {},
): string[] {
  const violations: string[] = [];
  for (const o of mutation?.set_headers ?? []) {
    const key = o.header?.key ?? "";
    const raw = o.header?.raw_value;
    const value = o.header?.value ?? "";
    if (raw !== undefined && raw.length > 0 && value !== "")
      violations.push(`${key}: both value and raw_value set`);
    if ((raw === undefined || raw.length === 0) && value !== "")
      violations.push(`${key}: value without raw_value (Envoy sends an empty header)`);
    const text = raw?.toString("utf8") ?? "";
    const append = o.append?.value;
    options.onSet?.({ key, value: text, append, appendAction: o.append_action });
    if (options.skip?.(key)) continue;
    const name = key.toLowerCase();
    const old = target.get(name);
    target.set(name, append === true && old !== undefined ? `${old},${text}` : text);
  }
  for (const k of mutation?.remove_headers ?? []) target.delete(k.toLowerCase());
  return violations;
}
