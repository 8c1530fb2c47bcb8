// Transport and lifecycle: TLS (self-signed and --cert-path), gRPC health semantics on both ports, and
// cleanup of streams Envoy abandons (cancel at every phase, thousands at once).
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { setMaxListeners } from "node:events";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { splitInto } from "../../test/support/envoy-client.js";
import {
  chat,
  ENDPOINT,
  type Harness,
  healthCheck,
  SERVING_MODES,
  startHarness,
} from "../../test/support/ext-proc-harness.js";
import { EXT_PROC_SERVICE, HEALTH_SERVICE, loadProtos, serviceOf } from "./protos.js";
import type { ResponseObserver } from "./router.js";
import { selfSignedKeyPair } from "./tls.js";

describe.each(SERVING_MODES)("TLS ($mode)", ({ thread }) => {
  it("serves ext_proc over TLS with a self-signed certificate", async () => {
    const h = await startHarness({ thread, secure: true });
    try {
      const res = await h.client.process({ chunks: splitInto(chat("tls"), 2) });
      expect(res.violations).toEqual([]);
      expect(res.destination).toBe(ENDPOINT);
    } finally {
      await h.stop();
    }
  });

  it("serves tls.crt / tls.key from --cert-path", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kvpick-cert-"));
    const pair = await selfSignedKeyPair();
    writeFileSync(join(dir, "tls.crt"), pair.cert);
    writeFileSync(join(dir, "tls.key"), pair.key);
    const h = await startHarness({ thread, secure: true, certPath: dir });
    try {
      const res = await h.client.process({ body: chat("cert-path") });
      expect(res.destination).toBe(ENDPOINT);
    } finally {
      await h.stop();
    }
  });
});

describe.each(SERVING_MODES)("gRPC health ($mode)", ({ thread }) => {
  let ready = false;
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ thread, isReady: () => ready });
  });
  afterAll(async () => {
    await h.stop();
  });

  it("reports liveness always, readiness-like names only when ready, SERVICE_UNKNOWN otherwise", async () => {
    for (const port of [h.ports.healthPort, h.ports.grpcPort]) {
      ready = false;
      expect(await healthCheck(port, "liveness")).toBe("SERVING");
      for (const name of ["readiness", "", EXT_PROC_SERVICE])
        expect(await healthCheck(port, name)).toBe("NOT_SERVING");
      expect(await healthCheck(port, "nope")).toBe("SERVICE_UNKNOWN");
      ready = true;
      for (const name of ["liveness", "readiness", "", EXT_PROC_SERVICE])
        expect(await healthCheck(port, name)).toBe("SERVING");
    }
  });

  it("streams readiness changes on Watch", async () => {
    ready = false;
    const Health = serviceOf(loadProtos(), HEALTH_SERVICE);
    const client = new Health(
      `127.0.0.1:${h.ports.healthPort}`,
      grpc.credentials.createInsecure(),
    ) as unknown as grpc.Client & {
      Watch(req: object): grpc.ClientReadableStream<{ status: string }>;
    };
    const call = client.Watch({ service: "readiness" });
    const seen: string[] = [];
    call.on("data", (m: { status: string }) => {
      seen.push(m.status);
      if (seen.length === 1) ready = true;
    });
    call.on("error", () => {});
    await vi.waitFor(() => expect(seen).toEqual(["NOT_SERVING", "SERVING"]), { timeout: 5_000 });
    call.cancel();
    client.close();
  });
});

describe.each(SERVING_MODES)("abandoned streams ($mode)", ({ thread }) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ thread });
  });
  afterAll(async () => {
    await h.stop();
  });

  const gauge = async (name: string) =>
    (await h.metrics.registry.getSingleMetric(name)!.get()).values[0]?.value;

  it("cleans up thousands of streams cancelled while routing, and reports them aborted", async () => {
    const N = 2_000;
    const outcomes: string[] = [];
    const observer: ResponseObserver = { onDone: (o) => outcomes.push(o) };
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    h.router.calls = [];
    h.router.handler = async () => {
      await gate;
      return { kind: "routed", endpoint: ENDPOINT, observer };
    };
    const ac = new AbortController();
    setMaxListeners(N + 10, ac.signal);
    const runs = Array.from({ length: N }, () => h.client.process({ body: chat("x"), signal: ac.signal }));
    await vi.waitFor(() => expect(h.router.calls.length).toBe(N), { timeout: 20_000 });
    expect(h.server.inFlight()).toBe(N);
    ac.abort();
    await Promise.all(runs);
    await vi.waitFor(() => expect(h.server.inFlight()).toBe(0), { timeout: 20_000 });
    release();
    await vi.waitFor(() => expect(outcomes.length).toBe(N), { timeout: 20_000 });
    expect(new Set(outcomes)).toEqual(new Set(["aborted"]));
    expect(await gauge("epp_extproc_streams_active")).toBe(0);
    expect(await gauge("epp_inflight_requests")).toBe(0);
    h.router.handler = () => ({ kind: "routed", endpoint: ENDPOINT });
  }, 60_000);

  it("tells a router the stream was cancelled, by cancelled() and by a signal made only when read", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    h.router.calls = [];
    h.router.handler = async () => {
      await gate;
      return { kind: "routed", endpoint: ENDPOINT };
    };
    const [early, late] = [new AbortController(), new AbortController()];
    const runs = [early, late].map((ac) => h.client.process({ body: chat("x"), signal: ac.signal }));
    await vi.waitFor(() => expect(h.router.calls.length).toBe(2), { timeout: 20_000 });
    const [first, second] = h.router.calls;
    const readEarly = first!.signal!; // read while routing: fires on the cancel
    expect([readEarly.aborted, first!.cancelled?.(), second!.cancelled?.()]).toEqual([false, false, false]);
    early.abort();
    late.abort();
    await Promise.all(runs);
    await vi.waitFor(() => expect(h.server.inFlight()).toBe(0), { timeout: 20_000 });
    expect(readEarly.aborted).toBe(true);
    expect(first!.cancelled?.()).toBe(true);
    expect(second!.cancelled?.()).toBe(true);
    expect(second!.signal!.aborted).toBe(true); // first read after the cancel: made aborted
    release();
    h.router.handler = () => ({ kind: "routed", endpoint: ENDPOINT });
  });

  it("reports 'aborted' when the stream dies mid-response, 'complete' after the response", async () => {
    const outcomes: string[] = [];
    const ac = new AbortController();
    const observer: ResponseObserver = {
      onResponseBody: () => {
        outcomes.push("chunk");
        ac.abort(); // Envoy's client goes away after the first response chunk (first run only)
      },
      onDone: (o) => outcomes.push(o),
    };
    h.router.handler = () => ({ kind: "routed", endpoint: ENDPOINT, observer });
    const run = h.client.process({
      body: chat("x"),
      response: { chunks: ["a", "b", "c"], lockstep: true },
      signal: ac.signal,
      timeoutMs: 20_000,
    });
    await run;
    await vi.waitFor(() => expect(outcomes.at(-1)).toBe("aborted"), { timeout: 5_000 });
    // On the serving thread the observer runs on the main thread after the chunk went back to Envoy, so the
    // client may have sent its next chunk before it aborts: one or two chunks, then "aborted" once.
    const chunks = thread ? outcomes.length - 1 : 1;
    expect(outcomes).toEqual([...Array<string>(chunks).fill("chunk"), "aborted"]);
    expect(chunks).toBeLessThanOrEqual(2);
    outcomes.length = 0;
    await h.client.process({ body: chat("x"), response: { chunks: ["a", "b"] } });
    expect(outcomes).toEqual(["chunk", "chunk", "complete"]);
    await vi.waitFor(() => expect(h.server.inFlight()).toBe(0), { timeout: 5_000 });
    expect(await gauge("epp_inflight_requests")).toBe(0);
    h.router.handler = () => ({ kind: "routed", endpoint: ENDPOINT });
  });

  it("serves a thousand concurrent streams correctly and leaves nothing open", async () => {
    const bodies = Array.from({ length: 1_000 }, (_, i) => chat(`request ${i} ${"x".repeat(i * 50)}`));
    h.router.calls = [];
    const results = await Promise.all(
      bodies.map((b, i) => h.client.process({ chunks: splitInto(b, 1 + (i % 4)), timeoutMs: 50_000 })),
    );
    results.forEach((r, i) => {
      expect(r.violations).toEqual([]);
      expect(r.destination).toBe(ENDPOINT);
      expect(r.body.equals(bodies[i]!)).toBe(true);
    });
    await vi.waitFor(() => expect(h.server.inFlight()).toBe(0), { timeout: 5_000 });
  }, 60_000);
});
