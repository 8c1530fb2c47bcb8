// The API-server calls kvpick needs — a list and a streaming watch for discovery, a create (POST) for the
// /metrics TokenReview and SubjectAccessReview — over node:http(s), with
// credentials from @kubernetes/client-node's KubeConfig (in-cluster service account, or a kubeconfig with
// certificates, tokens, exec plugins). Our own transport rather than the generated clients because both calls
// need deadlines: a black-holed API server must fail a list after `requestTimeoutMs`, and a watch that stops
// delivering (not even the server's periodic end) is cut after `watchIdleMs` so the reflector re-watches.
import http from "node:http";
import https from "node:https";
import { createInterface } from "node:readline";
import { KubeConfig } from "@kubernetes/client-node";

/** Any Kubernetes object as JSON; discovery reads only the fields it needs. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    deletionTimestamp?: string | null;
    [k: string]: unknown;
  };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  [k: string]: unknown;
}

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

export interface WatchEvent {
  type: WatchEventType;
  object: KubeObject;
}

export interface KubeList {
  resourceVersion: string;
  items: KubeObject[];
}

/** A failed call: `statusCode` is the HTTP status (or a watch ERROR's `code`), null for transport errors. */
export class KubeApiError extends Error {
  override name = "KubeApiError";
  constructor(
    message: string,
    readonly statusCode: number | null,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface WatchHandle {
  /** Resolves when the server ends the watch (its timeout); rejects on transport or HTTP errors. */
  readonly done: Promise<void>;
  abort(): void;
}

export interface KubeApiOptions {
  /** Deadline of a list (connect + whole body). */
  requestTimeoutMs?: number;
  /** A watch silent for this long is considered dead (servers end idle watches at `timeoutSeconds`). */
  watchIdleMs?: number;
}

/** In-cluster credentials in a pod, else $KUBECONFIG / ~/.kube/config (client-node's own search order). */
export function loadKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}

export class KubeApi {
  readonly #kc: KubeConfig;
  readonly #requestTimeoutMs: number;
  readonly #watchIdleMs: number;

  constructor(kc: KubeConfig, options: KubeApiOptions = {}) {
    this.#kc = kc;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.#watchIdleMs = options.watchIdleMs ?? 6 * 60_000;
  }

  /** The API server's base URL (for logs). */
  get server(): string {
    return this.#kc.getCurrentCluster()?.server ?? "(none)";
  }

  async list(path: string, query: Record<string, string>): Promise<KubeList> {
    const res = await this.#request(path, query, this.#requestTimeoutMs);
    const body = await readBody(res, this.#requestTimeoutMs);
    if (res.statusCode !== 200) throw statusError(res.statusCode ?? 0, body);
    let parsed: { metadata?: { resourceVersion?: string }; items?: KubeObject[] };
    try {
      parsed = JSON.parse(body);
    } catch (err) {
      throw new KubeApiError(`list ${path}: response is not JSON`, null, { cause: err });
    }
    return { resourceVersion: parsed.metadata?.resourceVersion ?? "", items: parsed.items ?? [] };
  }

  /** POSTs a JSON object (e.g. a TokenReview) and returns the server's JSON answer; non-2xx → KubeApiError. */
  async create(path: string, object: unknown): Promise<KubeObject> {
    const body = JSON.stringify(object);
    const res = await this.#request(path, {}, this.#requestTimeoutMs, undefined, body);
    const text = await readBody(res, this.#requestTimeoutMs);
    const code = res.statusCode ?? 0;
    if (code < 200 || code > 299) throw statusError(code, text);
    try {
      return JSON.parse(text) as KubeObject;
    } catch (err) {
      throw new KubeApiError(`create ${path}: response is not JSON`, null, { cause: err });
    }
  }

  /** Starts a watch (JSON lines of `{type, object}`); `onEvent` runs synchronously per line. */
  watch(path: string, query: Record<string, string>, onEvent: (event: WatchEvent) => void): WatchHandle {
    let req: http.ClientRequest | null = null;
    let aborted = false;
    const done = (async () => {
      const res = await this.#request(path, { ...query, watch: "true" }, this.#requestTimeoutMs, (r) => {
        req = r;
        if (aborted) r.destroy();
      });
      if (res.statusCode !== 200) throw statusError(res.statusCode ?? 0, await readBody(res, 5_000));
      await new Promise<void>((resolve, reject) => {
        const idle = () =>
          res.destroy(new KubeApiError(`watch ${path}: silent for ${this.#watchIdleMs} ms`, null));
        let timer = setTimeout(idle, this.#watchIdleMs);
        const lines = createInterface({ input: res, crlfDelay: Number.POSITIVE_INFINITY });
        lines.on("line", (line) => {
          clearTimeout(timer);
          timer = setTimeout(idle, this.#watchIdleMs);
          if (line.trim() === "") return;
          let event: WatchEvent;
          try {
            event = JSON.parse(line);
          } catch {
            return; // a torn line from a dying connection; the reflector re-watches from its last version
          }
          onEvent(event);
        });
        const finish = (err?: Error) => {
          clearTimeout(timer);
          if (err !== undefined && !aborted) reject(err);
          else resolve();
        };
        res.on("error", (err) =>
          finish(new KubeApiError(`watch ${path}: ${err.message}`, null, { cause: err })),
        );
        res.on("aborted", () => finish(new KubeApiError(`watch ${path}: connection lost`, null)));
        lines.on("close", () => finish());
        lines.on("error", () => {}); // readline re-emits the response's errors, already handled above
      });
    })();
    return {
      done,
      abort: () => {
        aborted = true;
        (req as http.ClientRequest | null)?.destroy();
      },
    };
  }

  async #request(
    path: string,
    query: Record<string, string>,
    connectTimeoutMs: number,
    onRequest?: (req: http.ClientRequest) => void,
    /** A JSON body to POST; GET without. */
    body?: string,
  ): Promise<http.IncomingMessage> {
    const cluster = this.#kc.getCurrentCluster();
    if (cluster === null) throw new KubeApiError("no Kubernetes cluster configured", null);
    const url = new URL(cluster.server.replace(/\/+$/, "") + path);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const opts: https.RequestOptions =
      body === undefined
        ? { method: "GET", headers: { accept: "application/json" } }
        : {
            method: "POST",
            headers: {
              accept: "application/json",
              "content-type": "application/json",
              "content-length": Buffer.byteLength(body),
            },
          };
    await this.#kc.applyToHTTPSOptions(opts); // CA, client cert/key, bearer token (re-read when rotated)
    const lib = url.protocol === "http:" ? http : https;
    return new Promise((resolve, reject) => {
      const req = lib.request(url, opts, (res) => {
        req.setTimeout(0);
        resolve(res);
      });
      onRequest?.(req);
      // Until response headers arrive; the body has its own deadline (list) or idle watchdog (watch).
      req.setTimeout(connectTimeoutMs, () =>
        req.destroy(new KubeApiError(`${path}: no response within ${connectTimeoutMs} ms`, null)),
      );
      req.on("error", (err) =>
        reject(
          err instanceof KubeApiError
            ? err
            : new KubeApiError(`${path}: ${err.message}`, null, { cause: err }),
        ),
      );
      req.end(body);
    });
  }
}

function readBody(res: http.IncomingMessage, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(
      () => res.destroy(new KubeApiError(`response body not complete within ${timeoutMs} ms`, null)),
      timeoutMs,
    );
    res.on("data", (c: Buffer) => chunks.push(c));
    res.on("end", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString("utf8"));
    });
    res.on("error", (err) => {
      clearTimeout(timer);
      reject(err instanceof KubeApiError ? err : new KubeApiError(err.message, null, { cause: err }));
    });
    res.on("aborted", () => {
      clearTimeout(timer);
      reject(new KubeApiError("connection lost while reading the response", null));
    });
  });
}

/** An HTTP error answer: the API server's Status message when there is one. */
function statusError(statusCode: number, body: string): KubeApiError {
  let message = body.slice(0, 300);
  try {
    const status = JSON.parse(body) as { message?: string };
    if (typeof status.message === "string") message = status.message;
  } catch {
    // not a Status object: keep the raw text
  }
  return new KubeApiError(`HTTP ${statusCode}: ${message}`, statusCode);
}
