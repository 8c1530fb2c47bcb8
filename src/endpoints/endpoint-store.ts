// The live endpoint set and each endpoint's latest load reading. Discovery (static list today, Kubernetes
// later) writes the set; the load scraper writes readings; scheduling reads consistent snapshots. Listeners
// hear about membership changes so per-pod work (KV-event subscriptions, index clearing) follows the pool.
import type { Logger } from "../observability/logger.js";
import { DispatchLedger, type DispatchTicket } from "./dispatch-ledger.js";
import type { Endpoint, EndpointChange, EndpointSpec, LoadMetrics, MetricsState } from "./endpoint.js";

export interface EndpointStoreOptions {
  /** A successful reading older than this makes the endpoint `stale` (GIE's metrics-staleness-threshold). */
  staleAfterMs?: number;
  /** Monotonic clock in ms; injectable for tests. */
  now?: () => number;
  /** Where a throwing listener is reported; the store itself never throws because of a listener. */
  logger?: Logger;
  /** A routed request whose first token is never seen stops counting as pending prefill after this. */
  pendingPrefillMaxAgeMs?: number;
}

export type EndpointListener = (change: EndpointChange) => void;

interface Entry {
  spec: EndpointSpec;
  metrics: LoadMetrics | null;
  okAt: number | null;
  failed: boolean;
  error: string | null;
  /** What kvpick routed here that the reading cannot show yet. */
  readonly ledger: DispatchLedger;
}

/** A ticket for an endpoint that left the pool: nothing to account. */
const NO_TICKET: DispatchTicket = Object.freeze({ firstToken: () => {}, done: () => {} });

export class EndpointStore {
  readonly #entries = new Map<string, Entry>();
  readonly #listeners = new Set<EndpointListener>();
  readonly #staleAfterMs: number;
  readonly #now: () => number;
  readonly #logger: Logger | undefined;
  readonly #pendingMaxAgeMs: number;

  constructor(options: EndpointStoreOptions = {}) {
    this.#staleAfterMs = options.staleAfterMs ?? 2000;
    this.#pendingMaxAgeMs = options.pendingPrefillMaxAgeMs ?? 10_000;
    this.#now = options.now ?? (() => performance.now());
    this.#logger = options.logger;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Registers a membership listener; returns its unsubscribe function. Called synchronously, in change order. */
  onChange(listener: EndpointListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Adds or updates one endpoint (matched by address). Returns false when nothing changed. */
  upsert(spec: EndpointSpec): boolean {
    const entry = this.#entries.get(spec.address);
    if (entry === undefined) {
      this.#entries.set(spec.address, {
        spec,
        metrics: null,
        okAt: null,
        failed: false,
        error: null,
        ledger: new DispatchLedger(this.#now(), this.#pendingMaxAgeMs),
      });
      this.#emit({ kind: "added", endpoint: spec });
      return true;
    }
    if (sameSpec(entry.spec, spec)) return false;
    const previous = entry.spec;
    entry.spec = spec; // readings survive a readiness or name change
    this.#emit({ kind: "updated", endpoint: spec, previous });
    return true;
  }

  /** Removes one endpoint and forgets its readings. Returns false when it was unknown. */
  remove(address: string): boolean {
    const entry = this.#entries.get(address);
    if (entry === undefined) return false;
    this.#entries.delete(address);
    this.#emit({ kind: "removed", endpoint: entry.spec });
    return true;
  }

  /** Makes the set exactly `specs` (a discovery resync): removals first, then additions and updates. */
  replaceAll(specs: readonly EndpointSpec[]): void {
    const wanted = new Set(specs.map((s) => s.address));
    for (const address of [...this.#entries.keys()]) if (!wanted.has(address)) this.remove(address);
    for (const spec of specs) this.upsert(spec);
  }

  has(address: string): boolean {
    return this.#entries.has(address);
  }

  specs(): EndpointSpec[] {
    return [...this.#entries.values()].map((e) => e.spec);
  }

  get(address: string): Endpoint | undefined {
    const entry = this.#entries.get(address);
    return entry === undefined ? undefined : this.#snapshot(entry, this.#now());
  }

  /**
   * Ready endpoints as snapshots, in insertion order. `subset` (the gateway's subset hint) restricts them:
   * an entry equal to an endpoint's address selects exactly that endpoint; any other entry selects every
   * endpoint on its IP, as the reference EPP matches subsets by IP only. An empty subset selects nothing.
   */
  candidates(subset?: readonly string[] | null): Endpoint[] {
    const now = this.#now();
    const out: Endpoint[] = [];
    const match = subset == null ? null : subsetMatcher(subset, this.#entries);
    for (const entry of this.#entries.values()) {
      if (!entry.spec.ready) continue;
      if (match !== null && !match(entry.spec)) continue;
      out.push(this.#snapshot(entry, now));
    }
    return out;
  }

  /** Every endpoint, ready or not, with its latest load reading (metrics and diagnostics). */
  endpoints(): Endpoint[] {
    const now = this.#now();
    return [...this.#entries.values()].map((entry) => this.#snapshot(entry, now));
  }

  /** Whether a pod's latest scrape names `model` (`model_name` of its load gauges); no snapshot is built. */
  servesModel(model: string): boolean {
    for (const entry of this.#entries.values())
      if (entry.metrics?.models?.includes(model) === true) return true;
    return false;
  }

  /** The store's clock (ms): a scraper stamps the moment it requests a page with it. */
  now(): number {
    return this.#now();
  }

  /**
   * A successful scrape, requested at `requestedAt` (the store's clock; default: now). Ignored for endpoints
   * removed meanwhile (a scrape may finish after removal).
   */
  recordMetrics(address: string, metrics: LoadMetrics, requestedAt?: number): void {
    const entry = this.#entries.get(address);
    if (entry === undefined) return;
    entry.metrics = metrics;
    entry.okAt = this.#now();
    entry.failed = false;
    entry.error = null;
    // The fresh reading shows what was routed before it was requested (as waiting or running requests).
    entry.ledger.scraped(requestedAt ?? entry.okAt);
  }

  /**
   * kvpick routed a request to `address` expecting the pod to compute `prefillTokens` prompt tokens: until
   * the next successful scrape (requests, tokens) and until the ticket reports the first token (tokens) this
   * is added to the endpoint's load as `Endpoint.dispatched`. The ticket's `done` ends the request.
   */
  dispatch(address: string, prefillTokens: number): DispatchTicket {
    const entry = this.#entries.get(address);
    if (entry === undefined) return NO_TICKET;
    return entry.ledger.dispatch(prefillTokens, this.#now(), this.#staleAfterMs);
  }

  /** A failed scrape; the last good reading is kept (for debugging) but no longer counts as fresh. */
  recordFailure(address: string, reason: string): void {
    const entry = this.#entries.get(address);
    if (entry === undefined) return;
    entry.failed = true;
    entry.error = reason;
  }

  /** Endpoint counts by metrics state, for gauges read at scrape time. */
  stats(): { total: number; ready: number; byState: Record<MetricsState, number> } {
    const now = this.#now();
    const byState: Record<MetricsState, number> = { pending: 0, fresh: 0, stale: 0, failed: 0 };
    let ready = 0;
    for (const entry of this.#entries.values()) {
      if (entry.spec.ready) ready++;
      byState[this.#state(entry, now)]++;
    }
    return { total: this.#entries.size, ready, byState };
  }

  #state(entry: Entry, now: number): MetricsState {
    if (entry.failed) return "failed";
    if (entry.okAt === null) return "pending";
    return now - entry.okAt > this.#staleAfterMs ? "stale" : "fresh";
  }

  #snapshot(entry: Entry, now: number): Endpoint {
    const { spec } = entry;
    return {
      address: spec.address,
      ip: spec.ip,
      port: spec.port,
      name: spec.name,
      ready: spec.ready,
      metrics: entry.metrics,
      metricsState: this.#state(entry, now),
      metricsAgeMs: entry.okAt === null ? null : now - entry.okAt,
      lastScrapeError: entry.error,
      dispatched: entry.ledger.credit(now, this.#staleAfterMs),
    };
  }

  #emit(change: EndpointChange): void {
    for (const listener of this.#listeners) {
      try {
        listener(change);
      } catch (err) {
        this.#logger?.error(
          { err, change: change.kind, endpoint: change.endpoint.address },
          "endpoint listener failed",
        );
      }
    }
  }
}

function sameSpec(a: EndpointSpec, b: EndpointSpec): boolean {
  return a.ip === b.ip && a.port === b.port && a.name === b.name && a.ready === b.ready;
}

function subsetMatcher(
  subset: readonly string[],
  entries: ReadonlyMap<string, Entry>,
): (spec: EndpointSpec) => boolean {
  const exact = new Set<string>();
  const ips = new Set<string>();
  for (const raw of subset) {
    const item = raw.trim();
    if (entries.has(item)) exact.add(item);
    else ips.add(ipOf(item));
  }
  return (spec) => exact.has(spec.address) || ips.has(spec.ip);
}

/** `10.0.0.5:8000` → `10.0.0.5`, `[fd00::5]:80` → `fd00::5`, a bare IP stays as it is. */
function ipOf(item: string): string {
  if (item.startsWith("[")) {
    const close = item.indexOf("]");
    return (close < 0 ? item.slice(1) : item.slice(1, close)).toLowerCase();
  }
  const colon = item.indexOf(":");
  if (colon < 0 || colon !== item.lastIndexOf(":")) return item.toLowerCase(); // bare IPv4 or bare IPv6
  return item.slice(0, colon);
}
