// The ext_proc serving thread (server.grpcThread) over real gRPC on 127.0.0.1: what crosses the thread
// boundary arrives intact and in order (bodies, observer hooks, recorder calls into the main registry),
// stop drains a request in flight, and a thread that dies is noticed, reported not ready and restarted.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { splitInto } from "../../test/support/envoy-client.js";
import {
  chat,
  ENDPOINT,
  type Harness,
  healthCheck,
  startHarness,
} from "../../test/support/ext-proc-harness.js";
import { EppError } from "../errors.js";
import type { ResponseObserver } from "../ext-proc/router.js";
import type { ThreadedExtProcServer } from "./grpc-thread.js";
import { ownedCopy } from "./grpc-thread-protocol.js";

const gate = () => {
  let release!: () => void;
  const opened = new Promise<void>((r) => {
    release = r;
  });
  return { opened, release };
};

describe("ownedCopy", () => {
  it("copies exactly the view's bytes of a Buffer that is a slice of a larger ArrayBuffer", () => {
    const big = randomBytes(10_000);
    const slice = big.subarray(1_234, 5_678);
    const copy = ownedCopy(slice);
    expect(copy.byteLength).toBe(slice.length);
    expect(Buffer.from(copy).equals(slice)).toBe(true);
    expect(copy).not.toBe(big.buffer);
  });
});

describe("ext_proc on its serving thread", () => {
  let h: Harness;
  const server = () => h.server as ThreadedExtProcServer;
  beforeAll(async () => {
    h = await startHarness({ thread: true });
  });
  afterAll(async () => {
    await h.stop();
  });

  const gauge = async (name: string) =>
    (await h.metrics.registry.getSingleMetric(name)!.get()).values[0]?.value;

  it("hands the router the exact bytes of a 1 MiB body and of one-chunk bodies (views into grpc-js frames)", async () => {
    for (const body of [randomBytes(1024 * 1024), chat("one chunk"), Buffer.alloc(0)]) {
      h.router.calls = [];
      const res = await h.client.process({ chunks: body.length > 70_000 ? splitInto(body, 3) : [body] });
      expect(res.violations).toEqual([]);
      expect(h.router.calls).toHaveLength(1);
      const seen = h.router.calls[0]!.body;
      expect(seen.equals(body)).toBe(true);
      // The main thread's Buffer owns its memory (transferred), not a view into a pooled slab.
      expect(seen.byteOffset).toBe(0);
      expect(seen.buffer.byteLength).toBe(body.length);
      expect(res.body.equals(body)).toBe(true);
    }
  });

  it("calls the observer in wire order with the exact chunks, and onDone exactly once", async () => {
    const seen: string[] = [];
    const observer: ResponseObserver = {
      onResponseHeaders: (headers) => seen.push(`headers ${headers.get(":status")}`),
      onResponseBody: (chunk, eos) => seen.push(`body ${chunk.toString()} ${eos}`),
      onDone: (outcome) => seen.push(`done ${outcome}`),
    };
    h.router.handler = () => ({ kind: "routed", endpoint: ENDPOINT, observer });
    const chunks = ["data: one\n\n", "data: two\n\n", "data: [DONE]\n\n"];
    await h.client.process({ body: chat("observed"), response: { chunks } });
    await vi.waitFor(() => expect(seen.at(-1)).toBe("done complete"));
    await new Promise((r) => setTimeout(r, 50)); // nothing more may follow
    expect(seen).toEqual([
      "headers 200",
      ...chunks.map((c, i) => `body ${c} ${i === chunks.length - 1}`),
      "done complete",
    ]);
    h.router.handler = () => ({ kind: "routed", endpoint: ENDPOINT });
  });

  it("counts requests, in-flight requests and streams in the main thread's registry", async () => {
    const before = await h.metrics.registry.getSingleMetricAsString("epp_requests_total");
    const count = (text: string, code: string) =>
      Number(new RegExp(`code="${code}"} (\\d+)`).exec(text)?.[1] ?? 0);
    const { opened, release } = gate();
    h.router.handler = async () => {
      await opened;
      return { kind: "routed", endpoint: ENDPOINT };
    };
    h.router.calls = [];
    const runs = Array.from({ length: 5 }, () => h.client.process({ body: chat("counted") }));
    await vi.waitFor(() => expect(h.router.calls).toHaveLength(5));
    expect(await gauge("epp_extproc_streams_active")).toBe(5);
    expect(h.server.inFlight()).toBe(5);
    release();
    await Promise.all(runs);
    h.router.handler = () => ({ kind: "rejected", error: new EppError("EPP_OVERLOADED", "full") });
    expect((await h.client.process({ body: chat("rejected") })).immediate?.status).toBe(429);
    h.router.handler = () => ({ kind: "routed", endpoint: ENDPOINT });
    await vi.waitFor(async () => expect(await gauge("epp_extproc_streams_active")).toBe(0));
    const after = await h.metrics.registry.getSingleMetricAsString("epp_requests_total");
    expect(count(after, "200") - count(before, "200")).toBe(5);
    expect(count(after, "429") - count(before, "429")).toBe(1);
    expect(await gauge("epp_inflight_requests")).toBe(0);
  });

  it("restarts a thread that died: not ready meanwhile, an error logged, requests it held aborted, same ports", async () => {
    const { grpcPort, healthPort } = h.ports;
    const outcomes: string[] = [];
    const { opened, release } = gate();
    h.router.calls = [];
    h.router.handler = async () => {
      await opened;
      return { kind: "routed", endpoint: ENDPOINT, observer: { onDone: (o) => outcomes.push(o) } };
    };
    const held = h.client.process({ body: chat("held"), timeoutMs: 20_000 });
    await vi.waitFor(() => expect(h.router.calls).toHaveLength(1));
    const request = h.router.calls[0]!;
    expect(server().serving()).toBe(true);
    await server().thread!.terminate(); // as if the thread crashed
    expect(server().serving()).toBe(false);
    expect(server().thread).toBeNull();
    expect(request.cancelled?.()).toBe(true); // the router sees the request gone at once
    expect(h.server.inFlight()).toBe(0);
    expect(await gauge("epp_extproc_streams_active")).toBe(0);
    await expect(healthCheck(healthPort, "readiness")).rejects.toThrow();
    expect(h.logs.some((l) => l.includes("ext_proc serving thread died"))).toBe(true);
    release();
    const res = await held;
    expect(res.grpcStatus).not.toBe(0); // its stream died with the thread
    await vi.waitFor(() => expect(outcomes).toEqual(["aborted"])); // routed after the death: aborted once
    h.router.handler = () => ({ kind: "routed", endpoint: ENDPOINT });
    await vi.waitFor(() => expect(server().serving()).toBe(true), { timeout: 10_000 });
    expect(await healthCheck(healthPort, "readiness")).toBe("SERVING");
    const again = await h.client.process({ body: chat("after restart"), timeoutMs: 20_000 });
    expect(again.destination).toBe(ENDPOINT);
    expect(h.ports).toEqual({ grpcPort, healthPort });
    expect(h.logs.some((l) => l.includes("ext_proc serving thread restarted"))).toBe(true);
    expect(await gauge("epp_inflight_requests")).toBe(0);
  }, 30_000);
});

describe("stopping the serving thread", () => {
  it("goes NOT_SERVING first, lets a request in flight finish, then the thread exits", async () => {
    const h = await startHarness({ thread: true });
    const { opened, release } = gate();
    h.router.handler = async () => {
      await opened;
      return { kind: "routed", endpoint: ENDPOINT };
    };
    const run = h.client.process({ chunks: splitInto(chat("draining"), 2), timeoutMs: 20_000 });
    await vi.waitFor(() => expect(h.router.calls).toHaveLength(1));
    const thread = (h.server as ThreadedExtProcServer).thread!;
    const exited = new Promise<number>((r) => thread.once("exit", r));
    const stopping = h.server.stop(10_000);
    await vi.waitFor(async () =>
      expect(await healthCheck(h.ports.healthPort, "readiness")).toBe("NOT_SERVING"),
    );
    expect(await healthCheck(h.ports.healthPort, "liveness")).toBe("SERVING");
    release();
    const res = await run;
    expect(res.violations).toEqual([]);
    expect(res.destination).toBe(ENDPOINT);
    await stopping;
    await exited;
    expect((h.server as ThreadedExtProcServer).thread).toBeNull();
    expect((h.server as ThreadedExtProcServer).serving()).toBe(false);
    h.client.close();
  });
});
