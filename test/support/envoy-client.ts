// An ext_proc client that drives kvpick the way Envoy does (reference envoy-ext-proc.md §3), and checks
// kvpick's answers against the rules Envoy enforces. FULL_DUPLEX_STREAMED: request headers, then every body
// chunk at once without waiting, last with end_of_stream (or trailers); expects the header response first,
// then `streamed_response` chunks up to end_of_stream. BUFFERED: headers, wait for their answer, then the
// whole body in one message, wait for its answer. The response phase mirrors it. Results are a structured
// view: what Envoy would forward upstream, the metadata, local replies, and every rule kvpick broke.
import type * as grpc from "@grpc/grpc-js";
import type { HeaderMutation, ProcessingRequest, ProcessingResponse } from "../../src/ext-proc/protos.js";
import { fromStruct, type Json, toStruct } from "../../src/ext-proc/struct.js";
import { applyHeaderMutation, EnvoyExtProcClient, headerMap } from "../../src/demo/envoy-ext-proc.js";

export type BodyMode = "FULL_DUPLEX_STREAMED" | "BUFFERED";
type Bytes = Buffer | string;

export interface EnvoyResponseSpec {
  status?: number;
  headers?: Record<string, string>;
  chunks?: Bytes[];
  trailers?: Record<string, string>;
  /** Send each chunk only after kvpick echoed the previous one (proves nothing is buffered). */
  lockstep?: boolean;
}

export interface EnvoyRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  /** Whole body, sent as one chunk (FULL_DUPLEX) unless `chunks` is given; absent = header-only. */
  body?: Bytes;
  chunks?: Bytes[];
  /** Send an extra empty end_of_stream chunk after the last one (Envoy ≥ 1.35 duplicate-EoS bug). */
  duplicateEos?: boolean;
  /** End the request with trailers instead of an end_of_stream chunk. */
  trailers?: Record<string, string>;
  mode?: BodyMode;
  responseMode?: BodyMode;
  /** Envoy ≥ 1.34 sends protocol_config in the first message; default true. */
  sendProtocolConfig?: boolean;
  /** metadata_context envoy.lb.subset_hint / x-gateway-destination-endpoint-subset. */
  subsetHint?: string[] | string;
  /** Simulated upstream response, sent once the request is routed. */
  response?: EnvoyResponseSpec;
  /** Cancel the stream (RST) at this point instead of finishing. */
  abortAt?: "after-headers" | "after-body-sent" | "after-body" | "after-response-headers";
  /** Cancels the stream (as Envoy does when the client goes away) whenever it fires. */
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface EnvoyResult {
  /** `x-gateway-destination-endpoint` as Envoy would forward it (null if never set). */
  destination: string | null;
  /** Request headers as forwarded upstream (client headers + kvpick's mutations). */
  upstreamHeaders: Map<string, string>;
  /** Every header kvpick set on the request, in order, decoded from raw_value. */
  setHeaders: Array<{ key: string; value: string; append: boolean | undefined; appendAction: unknown }>;
  clearRouteCache: boolean;
  /** Dynamic metadata merged over all responses, as plain JSON. */
  dynamicMetadata: Record<string, Json>;
  /** Request body as forwarded upstream, and the sizes of kvpick's chunks. */
  body: Buffer;
  bodyChunkSizes: number[];
  immediate: {
    status: number;
    body: Buffer;
    json: unknown;
    headers: Map<string, string>;
    details: string;
  } | null;
  /** Response body as forwarded downstream. */
  responseBody: Buffer;
  responseChunkSizes: number[];
  /** Rules Envoy enforces that kvpick broke (Envoy would fail or hang the request). Empty = good. */
  violations: string[];
  grpcStatus: number | null;
  messages: ProcessingResponse[];
}

const CHUNK_LIMIT = 62_000;
const toBuf = (b: Bytes) => (typeof b === "string" ? Buffer.from(b, "utf8") : b);
/** Splits `buf` into `n` nearly equal chunks (n ≥ 1). */
export function splitInto(buf: Buffer, n: number): Buffer[] {
  const out: Buffer[] = [];
  const size = Math.ceil(buf.length / n);
  for (let i = 0; i < n; i++) out.push(buf.subarray(i * size, Math.min((i + 1) * size, buf.length)));
  return out;
}

/** Splits `buf` at the given byte offsets. */
export function splitAt(buf: Buffer, offsets: number[]): Buffer[] {
  const cuts = [0, ...offsets, buf.length];
  return cuts.slice(1).map((end, i) => buf.subarray(cuts[i], end));
}

class Inbox {
  readonly items: ProcessingResponse[] = [];
  #waiter: (() => void) | null = null;
  ended = false;
  status: number | null = null;

  push(m: ProcessingResponse) {
    this.items.push(m);
    this.#waiter?.();
  }
  end(code: number) {
    this.ended = true;
    this.status ??= code;
    this.#waiter?.();
  }
  async next(deadline: number, what: string): Promise<ProcessingResponse | null> {
    while (this.items.length === 0) {
      if (this.ended) return null;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`envoy-client: timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#waiter = null;
    }
    return this.items.shift()!;
  }
}

export class EnvoyClient {
  readonly #client: EnvoyExtProcClient;

  constructor(address: string, options: { tls?: boolean } = {}) {
    this.#client = new EnvoyExtProcClient(address, options);
  }

  close(): void {
    this.#client.close();
  }

  async waitForReady(timeoutMs = 5_000): Promise<void> {
    await this.#client.waitForReady(timeoutMs);
  }

  async process(req: EnvoyRequest): Promise<EnvoyResult> {
    const call = this.#client.open();
    const inbox = new Inbox();
    call.on("data", (m: ProcessingResponse) => inbox.push(m));
    call.on("status", (s: grpc.StatusObject) => inbox.end(s.code));
    call.on("error", (e: grpc.ServiceError) => inbox.end(e.code));
    const run = new Exchange(req, call, inbox);
    const cancel = () => call.cancel();
    if (req.signal?.aborted) cancel();
    req.signal?.addEventListener("abort", cancel, { once: true });
    try {
      return await run.run();
    } finally {
      req.signal?.removeEventListener("abort", cancel);
      if (!inbox.ended) call.cancel();
    }
  }
}

class Exchange {
  readonly r: EnvoyResult = {
    destination: null,
    upstreamHeaders: new Map(),
    setHeaders: [],
    clearRouteCache: false,
    dynamicMetadata: {},
    body: Buffer.alloc(0),
    bodyChunkSizes: [],
    immediate: null,
    responseBody: Buffer.alloc(0),
    responseChunkSizes: [],
    violations: [],
    grpcStatus: null,
    messages: [],
  };
  readonly #deadline: number;
  readonly #mode: BodyMode;
  readonly #respMode: BodyMode;

  constructor(
    readonly req: EnvoyRequest,
    readonly call: grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse>,
    readonly inbox: Inbox,
  ) {
    this.#deadline = Date.now() + (req.timeoutMs ?? 10_000);
    this.#mode = req.mode ?? "FULL_DUPLEX_STREAMED";
    this.#respMode = req.responseMode ?? this.#mode;
  }

  async #next(what: string): Promise<ProcessingResponse | null> {
    const m = await this.inbox.next(this.#deadline, what);
    if (m === null) return null;
    this.r.messages.push(m);
    if (m.dynamic_metadata !== undefined) this.#mergeMetadata(m);
    if (m.immediate_response !== undefined) {
      const ir = m.immediate_response;
      const body = ir.body ?? Buffer.alloc(0);
      let json: unknown = null;
      try {
        json = JSON.parse(body.toString("utf8"));
      } catch {}
      this.r.immediate = {
        status: Number(ir.status?.code ?? 200),
        body,
        json,
        headers: this.#mutationMap(ir.headers),
        details: ir.details ?? "",
      };
    }
    return m;
  }

  #mergeMetadata(m: ProcessingResponse) {
    for (const [ns, value] of Object.entries(fromStruct(m.dynamic_metadata))) {
      // Envoy merges only Struct values per namespace.
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        this.r.violations.push(`dynamic metadata namespace ${ns} is not a Struct`);
        continue;
      }
      this.r.dynamicMetadata[ns] = { ...((this.r.dynamicMetadata[ns] as object) ?? {}), ...value };
    }
  }

  /** A local reply's headers, as Envoy builds them from the mutation. */
  #mutationMap(mutation: HeaderMutation | undefined): Map<string, string> {
    const out = new Map<string, string>();
    this.r.violations.push(...applyHeaderMutation(out, mutation));
    return out;
  }

  /** Applies a request header mutation as Envoy does; in FULL_DUPLEX_STREAMED Envoy skips content-length. */
  #applyRequestMutation(mutation: HeaderMutation | undefined) {
    this.r.violations.push(
      ...applyHeaderMutation(this.r.upstreamHeaders, mutation, {
        skip: (key) => key === "content-length" && this.#mode === "FULL_DUPLEX_STREAMED",
        onSet: (h) => this.r.setHeaders.push(h),
      }),
    );
    this.r.destination = this.r.upstreamHeaders.get("x-gateway-destination-endpoint") ?? null;
  }

  #send(m: ProcessingRequest) {
    this.call.write(m);
  }

  #aborted = false;

  #abort(at: EnvoyRequest["abortAt"]): boolean {
    if (this.req.abortAt !== at) return false;
    this.#aborted = true;
    this.call.cancel();
    return true;
  }

  async run(): Promise<EnvoyResult> {
    const req = this.req;
    const chunks = (req.chunks ?? (req.body !== undefined ? [req.body] : [])).map(toBuf);
    const hasBody = req.chunks !== undefined || req.body !== undefined || req.trailers !== undefined;
    const headers: Record<string, string> = {
      ":method": req.method ?? (hasBody ? "POST" : "GET"),
      ":path": req.path ?? "/v1/chat/completions",
      ":authority": "gateway.local",
      ":scheme": "http",
      "x-forwarded-proto": "http",
      ...req.headers,
    };
    for (const [k, v] of Object.entries(headers)) this.r.upstreamHeaders.set(k, v);
    const first: ProcessingRequest = {
      request_headers: { headers: headerMap(Object.entries(headers)), end_of_stream: !hasBody },
      metadata_context: { filter_metadata: {} },
    };
    if (req.subsetHint !== undefined) {
      first.metadata_context!.filter_metadata!["envoy.lb.subset_hint"] = toStruct({
        "x-gateway-destination-endpoint-subset": req.subsetHint,
      });
    }
    if (req.sendProtocolConfig ?? true) {
      first.protocol_config = { request_body_mode: this.#mode, response_body_mode: this.#respMode };
    }
    this.#send(first);
    if (this.#abort("after-headers")) return this.#finish(false);

    const routed =
      this.#mode === "FULL_DUPLEX_STREAMED" || !hasBody
        ? await this.#fullDuplexRequest(chunks, hasBody)
        : await this.#bufferedRequest(chunks);
    if (this.#aborted || this.#abort("after-body")) return this.#finish(false);
    if (!routed || req.response === undefined) return this.#finish(true);
    await this.#responsePhase(req.response);
    return this.#finish(!this.#aborted);
  }

  async #fullDuplexRequest(chunks: Buffer[], hasBody: boolean): Promise<boolean> {
    const req = this.req;
    if (hasBody) {
      // Envoy forwards every chunk at once, without waiting for any answer.
      chunks.forEach((c, i) => {
        const last = i === chunks.length - 1 && req.trailers === undefined;
        this.#send({ request_body: { body: c, end_of_stream: last } });
      });
      if (chunks.length === 0 && req.trailers === undefined)
        this.#send({ request_body: { body: Buffer.alloc(0), end_of_stream: true } });
      if (req.trailers !== undefined)
        this.#send({ request_trailers: { trailers: headerMap(Object.entries(req.trailers)) } });
      if (req.duplicateEos) this.#send({ request_body: { body: Buffer.alloc(0), end_of_stream: true } });
      if (this.#abort("after-body-sent")) return false;
    }
    const m = await this.#next("the request headers response");
    if (m === null || this.r.immediate !== null) return false;
    if (m.response !== "request_headers") {
      this.r.violations.push(`spurious ${m.response} before the request headers response`);
      return false;
    }
    const common = m.request_headers?.response;
    this.r.clearRouteCache = common?.clear_route_cache === true;
    this.#applyRequestMutation(common?.header_mutation);
    if (common?.body_mutation !== undefined)
      this.r.violations.push("body mutation on a FULL_DUPLEX header response");
    if (!hasBody) return true;
    // Body: streamed_response chunks until end_of_stream (or a trailers response when trailers were sent).
    const parts: Buffer[] = [];
    for (;;) {
      const b = await this.#next("request body responses");
      if (b === null) {
        this.r.violations.push("stream ended before the request body's end of stream");
        return false;
      }
      if (this.r.immediate !== null) return false;
      if (b.response === "request_trailers" && req.trailers !== undefined) break;
      if (b.response !== "request_body") {
        this.r.violations.push(`spurious ${b.response} while streaming the request body`);
        continue;
      }
      const sr = b.request_body?.response?.body_mutation?.streamed_response;
      if (sr === undefined) {
        this.r.violations.push("FULL_DUPLEX body response without streamed_response");
        continue;
      }
      if (b.request_body?.response?.header_mutation !== undefined)
        this.r.violations.push("header mutation on a FULL_DUPLEX body response (ignored by Envoy)");
      const chunk = sr.body ?? Buffer.alloc(0);
      if (chunk.length > CHUNK_LIMIT)
        this.r.violations.push(`request body chunk of ${chunk.length} bytes > ${CHUNK_LIMIT}`);
      parts.push(chunk);
      this.r.bodyChunkSizes.push(chunk.length);
      if (sr.end_of_stream === true) {
        if (req.trailers !== undefined)
          this.r.violations.push("end_of_stream chunk although the request had trailers");
        else break;
      }
    }
    this.r.body = Buffer.concat(parts);
    return true;
  }

  async #bufferedRequest(chunks: Buffer[]): Promise<boolean> {
    const req = this.req;
    const h = await this.#next("the request headers response");
    if (h === null || this.r.immediate !== null) return false;
    if (h.response !== "request_headers") {
      this.r.violations.push(`spurious ${h.response} before the request headers response`);
      return false;
    }
    this.#applyRequestMutation(h.request_headers?.response?.header_mutation);
    this.r.clearRouteCache ||= h.request_headers?.response?.clear_route_cache === true;
    // Envoy held the body until now; it sends it whole.
    const body = Buffer.concat(chunks);
    this.#send({ request_body: { body, end_of_stream: req.trailers === undefined } });
    const b = await this.#next("the request body response");
    if (b === null || this.r.immediate !== null) return false;
    if (b.response !== "request_body") {
      this.r.violations.push(`spurious ${b.response} instead of the request body response`);
      return false;
    }
    const common = b.request_body?.response;
    this.#applyRequestMutation(common?.header_mutation);
    this.r.clearRouteCache ||= common?.clear_route_cache === true;
    const mutation = common?.body_mutation;
    if (mutation?.streamed_response !== undefined)
      this.r.violations.push("streamed_response in BUFFERED mode");
    this.r.body = mutation?.clear_body ? Buffer.alloc(0) : (mutation?.body ?? body);
    this.r.bodyChunkSizes = [this.r.body.length];
    const cl = this.r.upstreamHeaders.get("content-length");
    if (mutation?.body !== undefined && cl !== undefined && Number(cl) !== this.r.body.length) {
      this.r.violations.push(`content-length ${cl} != mutated body length ${this.r.body.length}`);
    }
    if (req.trailers !== undefined) {
      this.#send({ request_trailers: { trailers: headerMap(Object.entries(req.trailers)) } });
      const t = await this.#next("the request trailers response");
      if (t?.response !== "request_trailers") this.r.violations.push("request trailers not answered");
    }
    return true;
  }

  async #responsePhase(spec: EnvoyResponseSpec): Promise<void> {
    const chunks = (spec.chunks ?? []).map(toBuf);
    const headers = { ":status": String(spec.status ?? 200), ...spec.headers };
    const eosOnHeaders = chunks.length === 0 && spec.trailers === undefined;
    this.#send({
      response_headers: { headers: headerMap(Object.entries(headers)), end_of_stream: eosOnHeaders },
    });
    if (this.#abort("after-response-headers")) return;
    const buffered = this.#respMode === "BUFFERED";
    const readHeaders = async () => {
      const h = await this.#next("the response headers response");
      if (h?.response !== "response_headers")
        this.r.violations.push(`expected a response_headers answer, got ${h?.response}`);
    };
    if (buffered || spec.lockstep || eosOnHeaders) await readHeaders();
    if (eosOnHeaders) return;
    const parts: Buffer[] = [];
    if (buffered) {
      const body = Buffer.concat(chunks);
      this.#send({ response_body: { body, end_of_stream: spec.trailers === undefined } });
      const b = await this.#next("the response body response");
      const mutation = b?.response_body?.response?.body_mutation;
      if (b?.response !== "response_body")
        this.r.violations.push(`expected a response_body answer, got ${b?.response}`);
      if (mutation?.streamed_response !== undefined)
        this.r.violations.push("streamed_response in BUFFERED mode");
      parts.push(mutation?.body ?? body);
    } else {
      let headersRead = spec.lockstep === true;
      const readEcho = async (wanted: number, eos: boolean) => {
        let got = 0;
        for (;;) {
          const b = await this.#next("response body responses");
          if (b === null) return this.r.violations.push("stream ended during the response body");
          if (!headersRead) {
            headersRead = true;
            if (b.response !== "response_headers")
              this.r.violations.push(`spurious ${b.response} before the response headers answer`);
            continue;
          }
          const sr = b.response_body?.response?.body_mutation?.streamed_response;
          if (b.response !== "response_body" || sr === undefined) {
            this.r.violations.push(`expected a streamed response_body, got ${b.response}`);
            continue;
          }
          const c = sr.body ?? Buffer.alloc(0);
          if (c.length > CHUNK_LIMIT)
            this.r.violations.push(`response chunk of ${c.length} bytes > ${CHUNK_LIMIT}`);
          parts.push(c);
          this.r.responseChunkSizes.push(c.length);
          got += c.length;
          if ((eos && sr.end_of_stream === true) || (!eos && got >= wanted)) return;
        }
      };
      const lastIdx = chunks.length - 1;
      if (spec.lockstep) {
        for (const [i, c] of chunks.entries()) {
          const eos = i === lastIdx && spec.trailers === undefined;
          this.#send({ response_body: { body: c, end_of_stream: eos } });
          await readEcho(c.length, eos);
        }
      } else if (chunks.length === 0) {
        await readHeaders();
      } else {
        for (const [i, c] of chunks.entries()) {
          this.#send({
            response_body: { body: c, end_of_stream: i === lastIdx && spec.trailers === undefined },
          });
        }
        const total = chunks.reduce((n, c) => n + c.length, 0);
        await readEcho(total, spec.trailers === undefined);
      }
    }
    this.r.responseBody = Buffer.concat(parts);
    if (spec.trailers !== undefined) {
      this.#send({ response_trailers: { trailers: headerMap(Object.entries(spec.trailers)) } });
      const t = await this.#next("the response trailers response");
      if (t?.response !== "response_trailers") this.r.violations.push("response trailers not answered");
    }
  }

  /** Envoy's normal end: half-close; wait for the server's status (must be OK after a clean exchange). */
  async #finish(graceful: boolean): Promise<EnvoyResult> {
    if (graceful) {
      this.call.end();
      while ((await this.inbox.next(this.#deadline, "the end of the stream")) !== null) {
        this.r.violations.push("message after the exchange was complete");
      }
    }
    this.r.grpcStatus = this.inbox.status;
    return this.r;
  }
}
