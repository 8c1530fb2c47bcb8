// A LOCAL STAND-IN FOR ENVOY, for `kvpick demo` and tests — not a production proxy (no TLS, retries,
// timeouts policy, load shedding or HTTP/2 upstreams). For each client request it drives kvpick over
// ext_proc the way Envoy's ext_proc filter does in FULL_DUPLEX_STREAMED mode (reference envoy-ext-proc.md):
// request headers, then every body chunk as it arrives; waits for the header response carrying
// `x-gateway-destination-endpoint`; forwards the body kvpick streams back to that pod; passes the pod's
// response through the response phase (response_headers, then each body chunk) and writes kvpick's
// streamed chunks to the client as they come — SSE is never buffered. An immediate_response from kvpick
// becomes the client's response. Demo-only: the chosen pod is echoed in `x-kvpick-destination`.
import { randomUUID } from "node:crypto";
import {
  createServer,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  request as httpRequest,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import type * as grpc from "@grpc/grpc-js";
import type { ProcessingRequest, ProcessingResponse } from "../ext-proc/protos.js";
import type { Logger } from "../observability/logger.js";
import { applyHeaderMutation, EnvoyExtProcClient, type ExtProcCall, headerMap } from "./envoy-ext-proc.js";

export interface EnvoyFrontOptions {
  /** kvpick's ext_proc address, host:port (plaintext). */
  extProcAddress: string;
  host?: string;
  /** 0 = a free port. */
  port: number;
  logger: Logger;
}

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "proxy-connection",
  "te",
]);

export class EnvoyFront {
  readonly #o: EnvoyFrontOptions;
  readonly #client: EnvoyExtProcClient;
  readonly #server: Server;
  readonly #log: Logger;
  #port = 0;

  constructor(options: EnvoyFrontOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: "envoy-front" });
    this.#client = new EnvoyExtProcClient(options.extProcAddress);
    this.#server = createServer((req, res) => this.#handle(req, res));
  }

  get port(): number {
    return this.#port;
  }

  async start(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(this.#o.port, this.#o.host ?? "127.0.0.1", () => resolve());
    });
    this.#port = (this.#server.address() as AddressInfo).port;
    return this.#port;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#client.close();
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const call = this.#client.open();
    const exchange = new Exchange(req, res, call, this.#log);
    exchange.run();
  }
}

/** One request's journey; mirrors Envoy's ext_proc filter state machine for FULL_DUPLEX_STREAMED. */
class Exchange {
  #phase: "request-headers" | "request-body" | "response-headers" | "response-body" | "done" =
    "request-headers";
  #upstream: ReturnType<typeof httpRequest> | null = null;
  #destination: string | null = null;
  readonly #upstreamHeaders = new Map<string, string>();
  readonly #hasBody: boolean;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly call: ExtProcCall,
    readonly log: Logger,
  ) {
    const method = req.method ?? "GET";
    const len = req.headers["content-length"];
    this.#hasBody = !(method === "GET" || method === "HEAD") && !(len !== undefined && Number(len) === 0);
  }

  run(): void {
    const { req, res, call } = this;
    const h = this.#upstreamHeaders;
    h.set(":method", req.method ?? "GET");
    h.set(":path", req.url ?? "/");
    h.set(":authority", req.headers.host ?? "localhost");
    h.set(":scheme", "http");
    for (const [k, v] of Object.entries(req.headers)) {
      if (v === undefined || HOP_BY_HOP.has(k) || k === "host") continue;
      h.set(k, Array.isArray(v) ? v.join(",") : v);
    }
    h.set("x-forwarded-proto", "http");
    if (!h.has("x-request-id")) h.set("x-request-id", randomUUID());
    call.on("data", (m: ProcessingResponse) => this.#onMessage(m));
    call.on("error", (e: grpc.ServiceError) => this.#fail(500, `ext_proc error: ${e.details || e.message}`));
    call.on("status", () => {});
    res.on("close", () => {
      if (this.#phase !== "done") {
        this.#phase = "done";
        call.cancel();
        this.#upstream?.destroy();
      }
    });
    call.write({
      request_headers: { headers: headerMap(h), end_of_stream: !this.#hasBody },
      protocol_config: {
        request_body_mode: "FULL_DUPLEX_STREAMED",
        response_body_mode: "FULL_DUPLEX_STREAMED",
      },
    } as ProcessingRequest);
    if (!this.#hasBody) return;
    // Every chunk goes to kvpick at once, without waiting for any answer (as Envoy).
    req.on("data", (c: Buffer) => call.write({ request_body: { body: c, end_of_stream: false } }));
    req.on("end", () => call.write({ request_body: { body: Buffer.alloc(0), end_of_stream: true } }));
  }

  #onMessage(m: ProcessingResponse): void {
    if (this.#phase === "done") return;
    if (m.immediate_response !== undefined) {
      this.#immediate(m);
      return;
    }
    switch (m.response) {
      case "request_headers": {
        applyHeaderMutation(this.#upstreamHeaders, m.request_headers?.response?.header_mutation);
        this.#destination = this.#upstreamHeaders.get("x-gateway-destination-endpoint") ?? null;
        if (this.#destination === null) {
          this.#fail(503, "no x-gateway-destination-endpoint from kvpick");
          return;
        }
        this.#openUpstream();
        this.#phase = this.#hasBody ? "request-body" : "response-headers";
        if (!this.#hasBody) this.#upstream?.end();
        return;
      }
      case "request_body": {
        const sr = m.request_body?.response?.body_mutation?.streamed_response;
        if (sr?.body !== undefined && sr.body.length > 0) this.#upstream?.write(sr.body);
        if (sr?.end_of_stream === true) {
          this.#upstream?.end();
          this.#phase = "response-headers";
        }
        return;
      }
      case "response_headers": {
        const out = new Map<string, string>(this.#pendingResponseHeaders);
        applyHeaderMutation(out, m.response_headers?.response?.header_mutation);
        const status = Number(out.get(":status") ?? 200);
        const headers: OutgoingHttpHeaders = {};
        for (const [k, v] of out) if (!k.startsWith(":") && k !== "content-length") headers[k] = v;
        headers["x-kvpick-destination"] = this.#destination ?? "";
        this.res.writeHead(status, headers);
        this.res.flushHeaders();
        this.#phase = "response-body";
        if (this.#responseEndedOnHeaders) this.#finish();
        return;
      }
      case "response_body": {
        const sr = m.response_body?.response?.body_mutation?.streamed_response;
        if (sr?.body !== undefined && sr.body.length > 0) this.res.write(sr.body);
        if (sr?.end_of_stream === true) this.#finish();
        return;
      }
      default:
        return; // trailers answers: nothing to do (no trailers are sent)
    }
  }

  #pendingResponseHeaders: Array<[string, string]> = [];
  #responseEndedOnHeaders = false;

  #openUpstream(): void {
    const dest = this.#destination!;
    const colon = dest.lastIndexOf(":");
    const host = dest.slice(0, colon).replace(/^\[|\]$/g, "");
    const headers: OutgoingHttpHeaders = {};
    for (const [k, v] of this.#upstreamHeaders) {
      // The body may have been changed by kvpick and is streamed: let Node frame it (chunked).
      if (k.startsWith(":") || k === "content-length") continue;
      headers[k] = v;
    }
    headers.host = this.#upstreamHeaders.get(":authority") ?? dest;
    const up = httpRequest({
      host,
      port: Number(dest.slice(colon + 1)),
      method: this.#upstreamHeaders.get(":method") ?? "GET",
      path: this.#upstreamHeaders.get(":path") ?? "/",
      headers,
    });
    this.#upstream = up;
    up.on("error", (err) =>
      this.#fail(503, `upstream connect error or disconnect/reset before headers: ${err.message}`),
    );
    up.on("response", (ur) => {
      const rh: Array<[string, string]> = [[":status", String(ur.statusCode ?? 502)]];
      for (const [k, v] of Object.entries(ur.headers)) {
        if (v === undefined || HOP_BY_HOP.has(k)) continue;
        rh.push([k, Array.isArray(v) ? v.join(",") : v]);
      }
      this.#pendingResponseHeaders = rh;
      const empty = ur.headers["content-length"] === "0";
      this.#responseEndedOnHeaders = empty;
      this.call.write({ response_headers: { headers: headerMap(rh), end_of_stream: empty } });
      if (empty) {
        ur.resume();
        return;
      }
      ur.on("data", (c: Buffer) => this.call.write({ response_body: { body: c, end_of_stream: false } }));
      ur.on("end", () => this.call.write({ response_body: { body: Buffer.alloc(0), end_of_stream: true } }));
      ur.on("error", () => this.#fail(502, "upstream reset"));
    });
  }

  #immediate(m: ProcessingResponse): void {
    const ir = m.immediate_response!;
    const headers: OutgoingHttpHeaders = {};
    for (const o of ir.headers?.set_headers ?? []) {
      const key = o.header?.key;
      if (key) headers[key] = o.header?.raw_value?.toString("utf8") ?? o.header?.value ?? "";
    }
    this.#upstream?.destroy();
    if (this.res.headersSent) {
      this.res.destroy();
    } else {
      this.res.writeHead(Number(ir.status?.code ?? 500) || 500, headers);
      this.res.end(ir.body ?? Buffer.alloc(0));
    }
    this.#done();
  }

  #finish(): void {
    this.res.end();
    this.#done();
  }

  #done(): void {
    this.#phase = "done";
    this.call.end();
  }

  #fail(status: number, message: string): void {
    if (this.#phase === "done") return;
    this.log.warn({ status, err: message, destination: this.#destination }, "demo front: request failed");
    this.#upstream?.destroy();
    if (!this.res.headersSent) {
      this.res.writeHead(status, { "content-type": "text/plain" });
      this.res.end(`${message}\n`);
    } else {
      this.res.destroy();
    }
    this.#phase = "done";
    this.call.cancel();
  }
}
