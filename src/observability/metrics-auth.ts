// /metrics authentication and authorization the way GIE's EPP does it (controller-runtime's
// `filters.WithAuthenticationAndAuthorization`, on by default with --metrics-endpoint-auth): the scraper's
// bearer token is checked with a TokenReview (authentication.k8s.io/v1), then the user it names must be
// allowed `get` on the non-resource URL `/metrics` (SubjectAccessReview, authorization.k8s.io/v1) — what a
// ClusterRole with `nonResourceURLs: ["/metrics"], verbs: ["get"]` grants, e.g. Prometheus' service account.
//
// Every scrape would otherwise cost two API-server round trips, so verdicts are cached per token: allowed for
// `allowTtlMs` (controller-runtime: 1 min authn, 5 min authz), refused for the shorter `denyTtlMs` (so a
// freshly granted RoleBinding takes effect quickly), at most `maxEntries` tokens (oldest dropped first), and
// concurrent scrapes with one token share one review. The cache key is a SHA-256 of the token; the token itself
// is sent only to the API server and never logged. An API server that cannot be reached gives 503 (not
// cached): the scraper is not at fault.
import { createHash } from "node:crypto";
import type { MetricsAccess, MetricsGate } from "./admin-server.js";
import { type Logger, RateLimitedLog } from "./logger.js";

/** The one API-server call this needs (KubeApi.create): POST a JSON object, resolve its JSON answer. */
export interface ReviewClient {
  create(path: string, object: unknown): Promise<{ status?: Record<string, unknown> }>;
}

export interface KubeMetricsAuthOptions {
  client: ReviewClient;
  logger: Logger;
  allowTtlMs?: number;
  denyTtlMs?: number;
  maxEntries?: number;
  now?: () => number;
}

export const TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews";
export const SUBJECT_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

const UNAUTHENTICATED: MetricsAccess = { allowed: false, status: 401, reason: "Unauthorized" };
const ALLOWED: MetricsAccess = { allowed: true };

interface Entry {
  readonly access: MetricsAccess;
  readonly expires: number;
}

export class KubeMetricsAuth implements MetricsGate {
  readonly #client: ReviewClient;
  readonly #log: Logger;
  readonly #failLog = new RateLimitedLog(30_000);
  readonly #allowTtlMs: number;
  readonly #denyTtlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  /** token digest → verdict; insertion order = age (re-set on refresh), so the first key is the oldest. */
  readonly #cache = new Map<string, Entry>();
  readonly #inFlight = new Map<string, Promise<MetricsAccess>>();
  /** Reviews sent to the API server (tests and the cache's worth). */
  reviews = 0;

  constructor(options: KubeMetricsAuthOptions) {
    this.#client = options.client;
    this.#log = options.logger.child({ component: "metrics-auth" });
    this.#allowTtlMs = options.allowTtlMs ?? 60_000;
    this.#denyTtlMs = options.denyTtlMs ?? 10_000;
    this.#maxEntries = options.maxEntries ?? 1024;
    this.#now = options.now ?? Date.now;
  }

  async check(authorization: string | undefined): Promise<MetricsAccess> {
    const m = authorization === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
    if (m === null) return UNAUTHENTICATED;
    const token = m[1]!;
    const key = createHash("sha256").update(token).digest("base64");
    const cached = this.#cache.get(key);
    if (cached !== undefined && cached.expires > this.#now()) return cached.access;
    let pending = this.#inFlight.get(key);
    if (pending === undefined) {
      pending = this.#review(token, key).finally(() => this.#inFlight.delete(key));
      this.#inFlight.set(key, pending);
    }
    return pending;
  }

  async #review(token: string, key: string): Promise<MetricsAccess> {
    let access: MetricsAccess;
    try {
      access = await this.#decide(token);
    } catch (err) {
      if (this.#failLog.admit("review") >= 0)
        this.#log.warn({ err: (err as Error).message }, "metrics auth: token review failed");
      return { allowed: false, status: 503, reason: "cannot verify the token now (Kubernetes API)" };
    }
    this.#cache.delete(key);
    if (this.#cache.size >= this.#maxEntries) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(key, {
      access,
      expires: this.#now() + (access.allowed ? this.#allowTtlMs : this.#denyTtlMs),
    });
    return access;
  }

  async #decide(token: string): Promise<MetricsAccess> {
    this.reviews++;
    const tr = await this.#client.create(TOKEN_REVIEWS, {
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenReview",
      spec: { token },
    });
    const status = tr.status ?? {};
    if (status.authenticated !== true) return UNAUTHENTICATED;
    const user = (status.user ?? {}) as {
      username?: string;
      uid?: string;
      groups?: string[];
      extra?: Record<string, string[]>;
    };
    this.reviews++;
    const sar = await this.#client.create(SUBJECT_ACCESS_REVIEWS, {
      apiVersion: "authorization.k8s.io/v1",
      kind: "SubjectAccessReview",
      spec: {
        user: user.username ?? "",
        ...(user.uid === undefined ? {} : { uid: user.uid }),
        ...(user.groups === undefined ? {} : { groups: user.groups }),
        ...(user.extra === undefined ? {} : { extra: user.extra }),
        nonResourceAttributes: { path: "/metrics", verb: "get" },
      },
    });
    if (sar.status?.allowed === true) return ALLOWED;
    // The user name is not secret (and bounded: one line per refused scrape, rate-limited).
    if (this.#failLog.admit(`deny:${user.username ?? ""}`) >= 0)
      this.#log.info({ user: user.username ?? "" }, "metrics auth: user may not get /metrics");
    return {
      allowed: false,
      status: 403,
      reason: `Authorization denied for user ${user.username ?? ""}`,
    };
  }
}
