import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { EndpointStore } from "./endpoint-store.js";
import { type BlockSizeSink, LoadScraper } from "./load-scraper.js";
import { parseEndpointList } from "./parse-endpoints.js";
import { TWO_ENGINE_PAGE } from "./vllm-pages.fixture.js";

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** A fake vLLM /metrics server on 127.0.0.1; `handler` may be swapped between scrapes. */
class FakePod {
  handler: Handler;
  requests = 0;
  connections = 0;
  inFlight = 0;
  maxInFlight = 0;
  readonly server: http.Server;
  #waiters: Array<{ n: number; resolve: () => void }> = [];

  constructor(handler: Handler) {
    this.handler = handler;
    this.server = http.createServer((req, res) => {
      this.requests++;
      this.inFlight++;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      res.on("close", () => this.inFlight--);
      this.handler(req, res);
      const due = this.#waiters.filter((w) => this.requests >= w.n);
      this.#waiters = this.#waiters.filter((w) => this.requests < w.n);
      for (const w of due) w.resolve();
    });
    this.server.on("connection", () => this.connections++);
  }

  async listen(): Promise<string> {
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Resolves once the pod has received `n` requests in total. */
  requestsReached(n: number): Promise<void> {
    if (this.requests >= n) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ n, resolve }));
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const serve =
  (body: string, status = 200): Handler =>
  (_req, res) => {
    res.writeHead(status, { "content-type": "text/plain; version=0.0.4" });
    res.end(body);
  };
const hang: Handler = () => {}; // never answers

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(
  handler: Handler,
  scraper: { timeoutMs?: number; intervalMs?: number; blockSizes?: BlockSizeSink } = {},
) {
  const pod = new FakePod(handler);
  const address = await pod.listen();
  let now = 0;
  const store = new EndpointStore({ staleAfterMs: 1000, now: () => now });
  store.replaceAll(parseEndpointList(address));
  const s = new LoadScraper(store, { timeoutMs: 2000, intervalMs: 1, ...scraper });
  cleanups.push(
    () => pod.close(),
    () => s.stop(),
  );
  return { pod, address, store, scraper: s, advance: (ms: number) => (now += ms) };
}

describe("LoadScraper", () => {
  it("records a vLLM reading summed over engines", async () => {
    const { address, store, scraper } = await setup(serve(TWO_ENGINE_PAGE));
    await scraper.scrapeNow(address);
    expect(store.get(address)).toMatchObject({
      metricsState: "fresh",
      metrics: { waiting: 5, running: 5, kvCacheUsage: 0.375, blockSize: 64, numGpuBlocks: 27000 },
    });
  });

  it("tells the block-size sink each pod's vllm:cache_config_info block_size", async () => {
    const seen: unknown[][] = [];
    const blockSizes: BlockSizeSink = {
      observe: (...args) => {
        seen.push(args);
        return true;
      },
    };
    const { address, scraper } = await setup(serve(TWO_ENGINE_PAGE), { blockSizes });
    await scraper.scrapeNow(address);
    expect(seen[0]).toEqual([address, 64, "vllm:cache_config_info"]);
  });

  it("marks the pod failed on HTTP errors, malformed pages and refused connections, then recovers", async () => {
    const { pod, address, store, scraper } = await setup(serve("oops", 500));
    expect(await scraper.scrapeNow(address)).toEqual({ ok: false, reason: "HTTP 500" });
    expect(store.get(address)).toMatchObject({ metricsState: "failed", lastScrapeError: "HTTP 500" });

    pod.handler = serve('vllm:num_requests_waiting{engine="0" 1\n');
    const malformed = await scraper.scrapeNow(address);
    expect(malformed).toEqual({
      ok: false,
      reason: "unusable page: malformed labels in vllm:num_requests_waiting",
    });

    pod.handler = serve(TWO_ENGINE_PAGE);
    expect((await scraper.scrapeNow(address)).ok).toBe(true);
    expect(store.get(address)?.metricsState).toBe("fresh");

    await pod.close();
    const refused = await scraper.scrapeNow(address);
    expect(refused.ok).toBe(false);
    expect(store.get(address)?.metricsState).toBe("failed");
  });

  it("fails a page cut off mid-body or larger than maxPageBytes", async () => {
    const cut: Handler = (_req, res) => {
      res.writeHead(200, { "content-length": "100000" });
      res.write("vllm:num_requests_waiting 1\n", () => res.socket?.destroy());
    };
    const { pod, address, scraper } = await setup(cut);
    const truncated = await scraper.scrapeNow(address);
    expect(truncated.ok).toBe(false);
    pod.handler = serve(TWO_ENGINE_PAGE);
    const store = new EndpointStore();
    store.replaceAll(parseEndpointList(address));
    const limited = new LoadScraper(store, { maxPageBytes: 100 });
    cleanups.push(() => limited.stop());
    expect(await limited.scrapeNow(address)).toEqual({ ok: false, reason: "page larger than 100 bytes" });
    expect(store.get(address)?.metricsState).toBe("failed");
  });

  it("times out a pod that does not answer, and the reading goes stale meanwhile", async () => {
    const { pod, address, store, scraper, advance } = await setup(serve(TWO_ENGINE_PAGE), { timeoutMs: 100 });
    await scraper.scrapeNow(address);
    pod.handler = hang;
    const pending = scraper.scrapeNow(address);
    await pod.requestsReached(2);
    advance(1001); // store clock: the last good reading is now older than staleAfterMs
    expect(store.get(address)?.metricsState).toBe("stale");
    expect(await pending).toEqual({ ok: false, reason: "timed out after 100 ms" });
    expect(store.get(address)?.metricsState).toBe("failed");
  });

  it("polls continuously on one kept-alive connection without overlapping scrapes", async () => {
    const slow: Handler = (_req, res) => setTimeout(() => serve(TWO_ENGINE_PAGE)(_req, res), 5);
    const { pod, address, scraper } = await setup(slow);
    scraper.start();
    await pod.requestsReached(2);
    await Promise.all([scraper.scrapeNow(address), scraper.scrapeNow(address)]); // join, never overlap
    await pod.requestsReached(6);
    expect(pod.maxInFlight).toBe(1);
    expect(pod.connections).toBe(1);
  });

  it("follows the store: new endpoints get polled, removed ones stop without errors", async () => {
    const { pod, address, store, scraper } = await setup(hang, { timeoutMs: 60_000 });
    scraper.start();
    await pod.requestsReached(1);
    const second = new FakePod(serve(TWO_ENGINE_PAGE));
    const secondAddress = await second.listen();
    cleanups.push(() => second.close());
    store.replaceAll(parseEndpointList(secondAddress)); // removes the hung pod, adds the new one
    await second.requestsReached(2);
    expect(store.has(address)).toBe(false);
    expect(store.get(secondAddress)?.metricsState).toBe("fresh");
    await scraper.stop(); // aborts nothing left hanging: the hung scrape was aborted on removal
    expect(await scraper.scrapeNow(address)).toEqual({ ok: false, reason: `unknown endpoint ${address}` });
  });
});
