// Polls every endpoint's vLLM `/metrics` (GIE polls every 50 ms) and records the reading in the store. One
// loop per endpoint: the next scrape is scheduled only after the previous one settles, so scrapes of one pod
// never overlap and a slow pod cannot pile up requests. Failures are recorded, logged on state change, and
// never thrown: a pod that stops answering is marked `failed` and scheduling treats it as saturated.
// https pods (GIE's --model-server-metrics-scheme) are scraped without certificate checks by default, as GIE
// does (pods' serving certificates are rarely issued for their IPs).
import http from "node:http";
import https from "node:https";
import { type Logger, RateLimitedLog } from "../observability/logger.js";
import type { EndpointSpec, LoadMetrics } from "./endpoint.js";
import type { EndpointStore } from "./endpoint-store.js";
import { type MetricSpecs, parseVllmMetrics } from "./vllm-metrics.js";
import type { Service } from "../service-group.js";

export interface LoadScraperOptions {
  /** Time from one scrape's start to the next one's start, when the scrape is faster than this. */
  intervalMs?: number;
  /** A scrape not finished (connect + full body) within this fails; GIE's poll timeout is 1 s. */
  timeoutMs?: number;
  path?: string;
  /** http (default) or https. */
  scheme?: "http" | "https";
  /** https only: skip certificate verification (GIE's default, true). */
  insecureSkipVerify?: boolean;
  /** Which metrics hold the load readings (default vLLM's names). */
  specs?: MetricSpecs;
  /** Pages above this fail: a runaway page must not cost unbounded memory every 50 ms. */
  maxPageBytes?: number;
  /** Warn once per pod when its `vllm:cache_config_info` hash algo disagrees: block hashes would never match. */
  expected?: { hashAlgo?: string };
  /**
   * Told every pod's `vllm:cache_config_info` block size: kvpick learns its block size from the first one
   * when not configured, and warns about pods that differ (kv-index/learnt-block-size.ts implements it).
   */
  blockSizes?: BlockSizeSink;
  logger?: Logger;
}

/** Where the pods' block sizes go. */
export interface BlockSizeSink {
  /** `pod` reports `size` tokens per block; returns whether it agrees with the size in use (warns if not). */
  observe(pod: string, size: number, source: "vllm:cache_config_info"): boolean;
}

export type ScrapeOutcome =
  | { readonly ok: true; readonly metrics: LoadMetrics }
  | { readonly ok: false; readonly reason: string };

interface Poller {
  readonly spec: EndpointSpec;
  timer: NodeJS.Timeout | null;
  inFlight: Promise<ScrapeOutcome> | null;
  abort: AbortController | null;
  stopped: boolean;
  failing: boolean;
  warnedConfig: string | null;
}

export class LoadScraper implements Service {
  readonly name = "load-scraper";
  readonly #store: EndpointStore;
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #path: string;
  readonly #specs: MetricSpecs | undefined;
  readonly #maxPageBytes: number;
  readonly #expected: { hashAlgo?: string };
  readonly #blockSizes: BlockSizeSink | undefined;
  readonly #logger: Logger | undefined;
  readonly #failLog = new RateLimitedLog(30_000);
  readonly #pollers = new Map<string, Poller>();
  // Keep-alive with one socket per pod: scrapes are sequential per pod, so one connection is reused forever.
  readonly #agent: http.Agent;
  readonly #lib: typeof http | typeof https;
  #unsubscribe: (() => void) | null = null;

  constructor(store: EndpointStore, options: LoadScraperOptions = {}) {
    this.#store = store;
    this.#intervalMs = options.intervalMs ?? 50;
    this.#timeoutMs = options.timeoutMs ?? 1000;
    this.#path = options.path ?? "/metrics";
    this.#specs = options.specs;
    const keepAlive = { keepAlive: true, maxSockets: 1, maxFreeSockets: 1 };
    if (options.scheme === "https") {
      this.#lib = https;
      this.#agent = new https.Agent({
        ...keepAlive,
        rejectUnauthorized: !(options.insecureSkipVerify ?? true),
      });
    } else {
      this.#lib = http;
      this.#agent = new http.Agent(keepAlive);
    }
    this.#maxPageBytes = options.maxPageBytes ?? 16 * 1024 * 1024;
    this.#expected = options.expected ?? {};
    this.#blockSizes = options.blockSizes;
    this.#logger = options.logger?.child({ component: "load-scraper" });
  }

  /** Starts polling every current endpoint and follows the store's membership from now on. */
  start(): undefined {
    if (this.#unsubscribe !== null) return;
    this.#unsubscribe = this.#store.onChange((change) => {
      if (change.kind === "removed") this.#stopPoller(change.endpoint.address);
      else if (change.kind === "added") this.#startPoller(change.endpoint);
    });
    for (const spec of this.#store.specs()) this.#startPoller(spec);
  }

  /** Stops every loop, aborts scrapes in flight and closes kept-alive sockets. */
  async stop(_graceMs?: number): Promise<void> {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    const pending = [...this.#pollers.keys()].map((address) => this.#stopPoller(address));
    await Promise.all(pending);
    this.#agent.destroy();
  }

  /**
   * Scrapes one endpoint now and records the outcome. Joins the scrape already in flight for that endpoint
   * instead of starting a second one. Used at startup (readiness) and by tests.
   */
  scrapeNow(address: string): Promise<ScrapeOutcome> {
    const poller = this.#pollers.get(address);
    if (poller?.inFlight) return poller.inFlight;
    const spec = poller?.spec ?? this.#store.specs().find((s) => s.address === address);
    if (spec === undefined) return Promise.resolve({ ok: false, reason: `unknown endpoint ${address}` });
    return this.#scrape(poller ?? this.#newPoller(spec));
  }

  #newPoller(spec: EndpointSpec): Poller {
    return {
      spec,
      timer: null,
      inFlight: null,
      abort: null,
      stopped: false,
      failing: false,
      warnedConfig: null,
    };
  }

  #startPoller(spec: EndpointSpec): void {
    if (this.#pollers.has(spec.address)) return;
    const poller = this.#newPoller(spec);
    this.#pollers.set(spec.address, poller);
    this.#tick(poller);
  }

  async #stopPoller(address: string): Promise<void> {
    const poller = this.#pollers.get(address);
    if (poller === undefined) return;
    this.#pollers.delete(address);
    poller.stopped = true;
    if (poller.timer !== null) clearTimeout(poller.timer);
    poller.abort?.abort();
    await poller.inFlight;
  }

  #tick(poller: Poller): void {
    poller.timer = null;
    if (poller.stopped) return;
    const started = performance.now();
    // Join a scrapeNow() already in flight rather than starting a second, overlapping scrape.
    void (poller.inFlight ?? this.#scrape(poller)).then(() => {
      if (poller.stopped) return;
      const wait = Math.max(0, this.#intervalMs - (performance.now() - started));
      poller.timer = setTimeout(() => this.#tick(poller), wait);
      poller.timer.unref(); // the scraper alone must not keep the process alive
    });
  }

  #scrape(poller: Poller): Promise<ScrapeOutcome> {
    // Requests routed from here on are not in this page: the reading takes back only earlier dispatch credit.
    const requestedAt = this.#store.now();
    const abort = new AbortController();
    poller.abort = abort;
    const run = this.#fetch(poller.spec, abort.signal).then(
      (text) => {
        const parsed = parseVllmMetrics(text, this.#specs);
        return parsed.ok ? parsed : { ok: false as const, reason: `unusable page: ${parsed.reason}` };
      },
      (err: unknown) => ({ ok: false as const, reason: (err as Error).message }),
    );
    const recorded = run.then((outcome) => {
      poller.inFlight = null;
      poller.abort = null;
      if (!poller.stopped) this.#record(poller, outcome, requestedAt);
      return outcome;
    });
    poller.inFlight = recorded;
    return recorded;
  }

  #record(poller: Poller, outcome: ScrapeOutcome, requestedAt: number): void {
    const { address } = poller.spec;
    if (outcome.ok) {
      this.#store.recordMetrics(address, outcome.metrics, requestedAt);
      if (poller.failing) this.#logger?.info({ endpoint: address }, "metrics scrape recovered");
      poller.failing = false;
      this.#checkConfig(poller, outcome.metrics);
      return;
    }
    this.#store.recordFailure(address, outcome.reason);
    if (!poller.failing || this.#failLog.admit(address) >= 0) {
      this.#logger?.warn({ endpoint: address, reason: outcome.reason }, "metrics scrape failed");
    }
    poller.failing = true;
  }

  #checkConfig(poller: Poller, m: LoadMetrics): void {
    const problems: string[] = [];
    const { hashAlgo } = this.#expected;
    // The block size is checked (and learnt) by the sink, which warns once per pod itself.
    if (m.blockSize !== null)
      this.#blockSizes?.observe(poller.spec.address, m.blockSize, "vllm:cache_config_info");
    if (hashAlgo !== undefined && m.prefixCachingHashAlgo !== null && m.prefixCachingHashAlgo !== hashAlgo) {
      problems.push(`pod prefix_caching_hash_algo ${m.prefixCachingHashAlgo} != configured ${hashAlgo}`);
    }
    const key = problems.join("; ");
    if (key !== "" && key !== poller.warnedConfig) {
      this.#logger?.warn(
        { endpoint: poller.spec.address, problems },
        "pod cache config differs: prefix hits impossible",
      );
    }
    poller.warnedConfig = key === "" ? null : key;
  }

  /** GET the page; rejects on connect errors, non-200, timeout, oversize, or a connection cut mid-body. */
  #fetch(spec: EndpointSpec, signal: AbortSignal): Promise<string> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (err: Error | null, text?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err !== null) {
          req.destroy();
          reject(err);
        } else resolve(text ?? "");
      };
      const req = this.#lib.request(
        { host: spec.ip, port: spec.port, path: this.#path, method: "GET", agent: this.#agent, signal },
        (res) => {
          if (res.statusCode !== 200) {
            res.resume(); // drain so the kept-alive socket can be reused
            finish(new Error(`HTTP ${res.statusCode}`));
            return;
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (chunk: Buffer) => {
            size += chunk.length;
            if (size > this.#maxPageBytes) finish(new Error(`page larger than ${this.#maxPageBytes} bytes`));
            else chunks.push(chunk);
          });
          res.on("end", () => finish(null, Buffer.concat(chunks, size).toString("utf8")));
          res.on("error", (err) => finish(err));
          res.on("close", () => finish(new Error("connection closed before the page ended")));
        },
      );
      const timer = setTimeout(
        () => finish(new Error(`timed out after ${this.#timeoutMs} ms`)),
        this.#timeoutMs,
      );
      req.on("error", (err) => finish(err));
      req.end();
    });
  }
}
