// A fake Kubernetes API server on 127.0.0.1 speaking the real list/watch protocol for pods and
// InferencePools: lists carry `metadata.resourceVersion`; `?watch=true&resourceVersion=N` replays every
// change after N and then streams JSON lines `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":…}`;
// label/field selectors filter as the API server's watch cache does (an object leaving the selector arrives as
// DELETED, entering as ADDED); a version older than the retained history gets an ERROR event with a 410
// Status. `restart()` closes every connection and reopens the same port (an API-server restart); state
// survives unless `compact()` drops the history. It also answers `POST …/tokenreviews`
// (authentication.k8s.io/v1) for the tokens `addToken` registered and `POST …/subjectaccessreviews`
// (authorization.k8s.io/v1) from the non-resource grants `allowNonResource` made (a ClusterRole
// `nonResourceURLs: [path], verbs: [verb]` bound to a user or group), with the API server's shapes and
// validation (400 for a malformed review).
import http from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { matchesLabels, parseSelector } from "../../src/endpoints/kube-label-selector.js";

type Obj = {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    [k: string]: unknown;
  };
  [k: string]: unknown;
};

interface Change {
  rv: number;
  type: "ADDED" | "MODIFIED" | "DELETED";
  object: Obj;
  previous: Obj | null;
}

interface Watcher {
  resource: string;
  namespace: string;
  labelSelector: string;
  fieldSelector: string;
  bookmarks: boolean;
  res: http.ServerResponse;
}

export interface RequestRecord {
  resource: string;
  watch: boolean;
  resourceVersion: string | null;
  query: string;
}

/** resource key: "pods" or "<group>/<version>/inferencepools". */
export class FakeKubeApi {
  #server: http.Server | null = null;
  #port = 0;
  #rv = 100;
  readonly #objects = new Map<string, Map<string, Obj>>();
  readonly #history: Change[] = [];
  /** Changes at or below this version are gone (410 for watches starting before it). */
  #compactedRv = 0;
  readonly #watchers = new Set<Watcher>();
  /** Resource keys this server serves; others answer 404 (CRD not installed). */
  readonly served = new Set<string>([
    "pods",
    "inference.networking.k8s.io/v1/inferencepools",
    "inference.networking.x-k8s.io/v1alpha2/inferencepools",
    "inference.networking.x-k8s.io/v1alpha2/inferenceobjectives",
  ]);
  readonly requests: RequestRecord[] = [];
  /** When set, every request gets this HTTP status (e.g. 500, 403). */
  failWith: number | null = null;
  readonly #tokens = new Map<string, ReviewUser>();
  /** "user:<name>" or "group:<name>" → allowed "<verb> <path>" pairs. */
  readonly #grants = new Map<string, Set<string>>();
  /** Every review received (tokens are not kept). */
  readonly reviews: Array<{ kind: "TokenReview" | "SubjectAccessReview"; user: string | null }> = [];

  /** A bearer token the TokenReview endpoint authenticates as `user`. */
  addToken(token: string, user: ReviewUser): void {
    this.#tokens.set(token, user);
  }

  /** Grants `verb` on a non-resource URL to `user:<name>` or `group:<name>`. */
  allowNonResource(subject: string, path = "/metrics", verb = "get"): void {
    const set = this.#grants.get(subject) ?? new Set<string>();
    this.#grants.set(subject, set);
    set.add(`${verb} ${path}`);
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  async start(port = 0): Promise<this> {
    const server = http.createServer((req, res) => this.#handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
    this.#server = server;
    this.#port = (server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    if (server === null) return;
    this.#server = null;
    for (const w of this.#watchers) w.res.destroy();
    this.#watchers.clear();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Down, then up again on the same port. */
  async restart(): Promise<void> {
    await this.stop();
    await this.start(this.#port);
  }

  /** A KubeConfig pointing at this server (what a test hands to KubeApi). */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromClusterAndUser(
      { name: "fake", server: this.url, skipTLSVerify: true },
      { name: "test", token: "t" },
    );
    return kc;
  }

  /** Creates or replaces an object; returns it with its new resourceVersion. */
  apply(resource: string, object: Obj): Obj {
    const store = this.#store(resource);
    const key = `${object.metadata.namespace}/${object.metadata.name}`;
    const previous = store.get(key) ?? null;
    const obj = structuredClone(object);
    obj.metadata.resourceVersion = String(++this.#rv);
    store.set(key, obj);
    this.#record(
      { rv: this.#rv, type: previous === null ? "ADDED" : "MODIFIED", object: obj, previous },
      resource,
    );
    return obj;
  }

  delete(resource: string, namespace: string, name: string): void {
    const store = this.#store(resource);
    const key = `${namespace}/${name}`;
    const previous = store.get(key);
    if (previous === undefined) return;
    store.delete(key);
    const obj = structuredClone(previous);
    obj.metadata.resourceVersion = String(++this.#rv);
    this.#record({ rv: this.#rv, type: "DELETED", object: obj, previous }, resource);
  }

  get(resource: string, namespace: string, name: string): Obj | undefined {
    return this.#store(resource).get(`${namespace}/${name}`);
  }

  /** Drops the change history: watches resuming from an older version get 410 Gone. */
  compact(): void {
    this.#compactedRv = this.#rv;
    this.#history.length = 0;
  }

  /** Sends a BOOKMARK with the current version to every watch that asked for bookmarks. */
  bookmark(): void {
    for (const w of this.#watchers)
      if (w.bookmarks)
        this.#send(w, "BOOKMARK", {
          kind: "Pod",
          apiVersion: "v1",
          metadata: { resourceVersion: String(this.#rv) },
        });
  }

  /** Ends every open watch normally (as the server's timeoutSeconds does). */
  endWatches(): void {
    for (const w of this.#watchers) w.res.end();
    this.#watchers.clear();
  }

  /** Sends an ERROR event with a 410 Status on every open watch (an etcd compaction under a running watch). */
  expireWatches(): void {
    for (const w of this.#watchers) {
      this.#send(w, "ERROR", {
        kind: "Status",
        apiVersion: "v1",
        status: "Failure",
        message: "too old resource version",
        reason: "Expired",
        code: 410,
      });
      w.res.end();
    }
    this.#watchers.clear();
  }

  openWatches(resource?: string): number {
    return [...this.#watchers].filter((w) => resource === undefined || w.resource === resource).length;
  }

  #store(resource: string): Map<string, Obj> {
    let s = this.#objects.get(resource);
    if (s === undefined) {
      s = new Map();
      this.#objects.set(resource, s);
    }
    return s;
  }

  #record(change: Change, resource: string): void {
    this.#history.push({ ...change, object: { ...change.object, __resource: resource } as Obj });
    for (const w of this.#watchers) if (w.resource === resource) this.#deliver(w, change);
  }

  /** The watch-cache filter: transitions across the selector become ADDED / DELETED. */
  #deliver(w: Watcher, c: Change): void {
    if (c.object.metadata.namespace !== w.namespace) return;
    const now = this.#matches(w, c.object);
    const before = c.previous !== null && this.#matches(w, c.previous);
    if (c.type === "ADDED" && now) this.#send(w, "ADDED", c.object);
    else if (c.type === "DELETED" && before) this.#send(w, "DELETED", c.object);
    else if (c.type === "MODIFIED") {
      if (now && before) this.#send(w, "MODIFIED", c.object);
      else if (now) this.#send(w, "ADDED", c.object);
      else if (before) this.#send(w, "DELETED", c.object);
    }
  }

  #matches(w: { labelSelector: string; fieldSelector: string }, obj: Obj): boolean {
    if (!matchesLabels(parseSelector(w.labelSelector), obj.metadata.labels)) return false;
    const m = /^metadata\.name=(.+)$/.exec(w.fieldSelector);
    return m === null || obj.metadata.name === m[1];
  }

  #send(w: Watcher, type: string, object: unknown): void {
    const clean = { ...(object as Record<string, unknown>) };
    delete clean.__resource;
    w.res.write(`${JSON.stringify({ type, object: clean })}\n`);
  }

  /** TokenReview / SubjectAccessReview: create-only resources answered in the response, never stored. */
  #handleReview(req: http.IncomingMessage, res: http.ServerResponse, path: string): void {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const kind =
        path === "/apis/authentication.k8s.io/v1/tokenreviews"
          ? "TokenReview"
          : path === "/apis/authorization.k8s.io/v1/subjectaccessreviews"
            ? "SubjectAccessReview"
            : null;
      this.requests.push({ resource: kind ?? path, watch: false, resourceVersion: null, query: "" });
      if (this.failWith !== null) return status(res, this.failWith, "injected failure");
      if (req.headers.authorization !== "Bearer t") return status(res, 401, "Unauthorized");
      if (kind === null) return status(res, 404, "the server could not find the requested resource");
      let body: { apiVersion?: string; kind?: string; spec?: Record<string, unknown> };
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        return status(res, 400, "the object provided is unrecognized (must be JSON)");
      }
      const group = kind === "TokenReview" ? "authentication.k8s.io/v1" : "authorization.k8s.io/v1";
      if (body.apiVersion !== group || body.kind !== kind)
        return status(res, 400, `expected apiVersion ${group}, kind ${kind}`);
      const spec = body.spec ?? {};
      const reply = (statusField: object) => {
        res.writeHead(201, { "content-type": "application/json" });
        res.end(JSON.stringify({ apiVersion: group, kind, metadata: {}, spec, status: statusField }));
      };
      if (kind === "TokenReview") {
        if (typeof spec.token !== "string" || spec.token === "")
          return status(res, 400, "TokenReview.authentication.k8s.io is invalid: spec.token: Required value");
        const user = this.#tokens.get(spec.token);
        this.reviews.push({ kind, user: user?.username ?? null });
        return reply(
          user === undefined
            ? { user: {}, error: "[invalid bearer token, token lookup failed]" }
            : {
                authenticated: true,
                user: { groups: [], ...user },
                audiences: ["https://kubernetes.default.svc"],
              },
        );
      }
      const nonResource = spec.nonResourceAttributes as { path?: string; verb?: string } | undefined;
      const user = typeof spec.user === "string" ? spec.user : "";
      const groups = Array.isArray(spec.groups) ? (spec.groups as string[]) : [];
      if ((nonResource === undefined) === (spec.resourceAttributes === undefined))
        return status(
          res,
          400,
          "SubjectAccessReview.authorization.k8s.io is invalid: exactly one of nonResourceAttributes or resourceAttributes must be specified",
        );
      if (user === "" && groups.length === 0)
        return status(
          res,
          400,
          'SubjectAccessReview.authorization.k8s.io is invalid: spec.user: Invalid value: "": at least one of user or group must be specified',
        );
      this.reviews.push({ kind, user });
      const wanted = `${nonResource?.verb ?? ""} ${nonResource?.path ?? ""}`;
      const allowed = [`user:${user}`, ...groups.map((g) => `group:${g}`)].some(
        (subject) => this.#grants.get(subject)?.has(wanted) === true,
      );
      return reply(
        allowed ? { allowed: true, reason: "RBAC: allowed by ClusterRoleBinding" } : { allowed: false },
      );
    });
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://x");
    const route =
      /^\/api\/v1\/namespaces\/([^/]+)\/(pods)$/.exec(url.pathname) ??
      /^\/apis\/([^/]+\/[^/]+)\/namespaces\/([^/]+)\/(inferencepools|inferenceobjectives)$/.exec(
        url.pathname,
      );
    let resource: string | null = null;
    let namespace = "";
    if (route !== null && route.length === 3) {
      resource = "pods";
      namespace = decodeURIComponent(route[1]!);
    } else if (route !== null) {
      resource = `${route[1]}/${route[3]}`;
      namespace = decodeURIComponent(route[2]!);
    }
    if (req.method === "POST") {
      this.#handleReview(req, res, url.pathname);
      return;
    }
    const q = url.searchParams;
    const watch = q.get("watch") === "true";
    this.requests.push({
      resource: resource ?? url.pathname,
      watch,
      resourceVersion: q.get("resourceVersion"),
      query: url.search,
    });
    if (this.failWith !== null) {
      status(res, this.failWith, "injected failure");
      return;
    }
    if (req.headers.authorization !== "Bearer t") {
      status(res, 401, "Unauthorized");
      return;
    }
    if (resource === null || !this.served.has(resource)) {
      status(res, 404, "the server could not find the requested resource");
      return;
    }
    const w = {
      resource,
      namespace,
      labelSelector: q.get("labelSelector") ?? "",
      fieldSelector: q.get("fieldSelector") ?? "",
    };
    if (!watch) {
      const items = [...this.#store(resource).values()].filter(
        (o) => o.metadata.namespace === namespace && this.#matches(w, o),
      );
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          kind: "List",
          apiVersion: "v1",
          metadata: { resourceVersion: String(this.#rv) },
          items,
        }),
      );
      return;
    }
    const from = Number(q.get("resourceVersion") ?? "0");
    res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    const watcher: Watcher = { ...w, bookmarks: q.get("allowWatchBookmarks") === "true", res };
    if (from < this.#compactedRv) {
      this.#send(watcher, "ERROR", {
        kind: "Status",
        apiVersion: "v1",
        status: "Failure",
        message: `too old resource version: ${from} (${this.#compactedRv})`,
        reason: "Expired",
        code: 410,
      });
      res.end();
      return;
    }
    for (const c of this.#history)
      if (c.rv > from && (c.object as Record<string, unknown>).__resource === resource)
        this.#deliver(watcher, c);
    this.#watchers.add(watcher);
    res.on("close", () => this.#watchers.delete(watcher));
  }
}

export interface ReviewUser {
  username: string;
  uid?: string;
  groups?: string[];
}

function status(res: http.ServerResponse, code: number, message: string): void {
  res.writeHead(code, { "content-type": "application/json" });
  res.end(JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", message, code }));
}

/** A pod object as the API server returns it. */
export function podObject(
  name: string,
  ip: string | null,
  options: {
    namespace?: string;
    labels?: Record<string, string>;
    ready?: boolean;
    phase?: string;
    terminating?: boolean;
  } = {},
): Obj {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace: options.namespace ?? "default",
      labels: options.labels ?? { app: "vllm" },
      ...(options.terminating ? { deletionTimestamp: "2026-01-01T00:00:00Z" } : {}),
    },
    spec: { containers: [{ name: "vllm", image: "vllm/vllm-openai" }] },
    status: {
      phase: options.phase ?? "Running",
      ...(ip === null ? {} : { podIP: ip, podIPs: [{ ip }] }),
      conditions: [{ type: "Ready", status: (options.ready ?? true) ? "True" : "False" }],
    },
  };
}

export function poolV1(
  name: string,
  matchLabels: Record<string, string>,
  ports: number[],
  namespace = "default",
): Obj {
  return {
    apiVersion: "inference.networking.k8s.io/v1",
    kind: "InferencePool",
    metadata: { name, namespace },
    spec: {
      selector: { matchLabels },
      targetPorts: ports.map((number) => ({ number })),
      endpointPickerRef: { name: "kvpick", port: { number: 9002 } },
    },
  };
}

export function poolV1alpha2(
  name: string,
  selector: Record<string, string>,
  port: number,
  namespace = "default",
): Obj {
  return {
    apiVersion: "inference.networking.x-k8s.io/v1alpha2",
    kind: "InferencePool",
    metadata: { name, namespace },
    spec: { selector, targetPortNumber: port, extensionRef: { name: "kvpick" } },
  };
}

/** GIE v1.5's InferenceObjective: `spec.priority` (absent = 0) and `spec.poolRef` naming the pool. */
export function objectiveV1alpha2(
  name: string,
  poolName: string,
  priority?: number,
  namespace = "default",
): Obj {
  return {
    apiVersion: "inference.networking.x-k8s.io/v1alpha2",
    kind: "InferenceObjective",
    metadata: { name, namespace },
    spec: {
      ...(priority === undefined ? {} : { priority }),
      poolRef: { group: "inference.networking.k8s.io", kind: "InferencePool", name: poolName },
    },
  };
}

export const OBJECTIVES = "inference.networking.x-k8s.io/v1alpha2/inferenceobjectives";
export const POOLS_V1 = "inference.networking.k8s.io/v1/inferencepools";
export const POOLS_V1ALPHA2 = "inference.networking.x-k8s.io/v1alpha2/inferencepools";
