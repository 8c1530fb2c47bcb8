// End to end over real gRPC on 127.0.0.1: an Envoy-behaving client against the ext_proc server with a
// fake Router. Asserts what Envoy would forward (destination, metadata, body) and every rule it enforces.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EnvoyRequest, splitAt, splitInto } from "../../test/support/envoy-client.js";
import {
  chat,
  ENDPOINT,
  type Harness,
  SERVING_MODES,
  startHarness,
} from "../../test/support/ext-proc-harness.js";
import type { ResponseObserver } from "./router.js";

const SECRET = "zebra-prompt-text-that-must-never-be-logged";

describe.each(SERVING_MODES)("ext_proc server (plaintext, FULL_DUPLEX_STREAMED) ($mode)", ({ thread }) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ thread });
  });
  afterAll(async () => {
    await h.stop();
  });

  const routeOnce = async (req: EnvoyRequest) => {
    h.router.calls = [];
    const res = await h.client.process(req);
    expect(res.violations).toEqual([]);
    return res;
  };

  it("routes a body sent in 1..N chunks, split inside UTF-8 sequences, and gives the exact bytes back", async () => {
    const body = chat(`héllo 世界 🙂 ${SECRET} ✓`);
    const multibyte = body.indexOf(Buffer.from("世")) + 1; // inside a 3-byte sequence
    const emoji = body.indexOf(Buffer.from("🙂")) + 2; // inside a 4-byte sequence
    const splits = [
      [body],
      ...[2, 3, 7, 16].map((n) => splitInto(body, n)),
      splitAt(body, [multibyte, emoji]),
    ];
    for (const chunks of splits) {
      const res = await routeOnce({ chunks });
      expect(h.router.calls).toHaveLength(1);
      expect(h.router.calls[0]!.body.equals(body)).toBe(true);
      expect(h.router.calls[0]!.method).toBe("POST");
      expect(h.router.calls[0]!.path).toBe("/v1/chat/completions");
      expect(res.destination).toBe(ENDPOINT);
      expect(res.clearRouteCache).toBe(true);
      expect(res.dynamicMetadata).toEqual({ "envoy.lb": { "x-gateway-destination-endpoint": ENDPOINT } });
      expect(res.body.equals(body)).toBe(true);
      expect(res.grpcStatus).toBe(0);
    }
    expect(h.logs.join("")).not.toContain(SECRET);
  });

  it("re-chunks bodies over 62 KB (and over 1 MB) into ≤ 62,000-byte chunks, reassembled identical", async () => {
    for (const size of [62_000, 62_001, 200_000, 1_200_000]) {
      const body = randomBytes(size);
      const res = await routeOnce({ chunks: splitInto(body, 5) });
      expect(h.router.calls[0]!.body.equals(body)).toBe(true);
      expect(res.body.equals(body)).toBe(true);
      expect(res.bodyChunkSizes).toHaveLength(Math.ceil(size / 62_000));
      expect(Math.max(...res.bodyChunkSizes)).toBeLessThanOrEqual(62_000);
    }
  });

  it("ignores body data after the first end of stream", async () => {
    const body = chat("duplicate eos");
    const res = await routeOnce({ chunks: splitInto(body, 3), duplicateEos: true });
    expect(h.router.calls).toHaveLength(1);
    expect(res.body.equals(body)).toBe(true);
  });

  it("routes an empty final chunk and an empty body", async () => {
    const body = chat("empty final chunk");
    let res = await routeOnce({ chunks: [body, Buffer.alloc(0)] });
    expect(res.body.equals(body)).toBe(true);
    res = await routeOnce({ chunks: [Buffer.alloc(0)] });
    expect(h.router.calls[0]!.body.length).toBe(0);
    expect(res.bodyChunkSizes).toEqual([0]);
  });

  it("routes a header-only request at once with an empty body", async () => {
    const res = await routeOnce({ method: "GET", path: "/v1/models" });
    expect(h.router.calls[0]!.body.length).toBe(0);
    expect(h.router.calls[0]!.method).toBe("GET");
    expect(h.router.calls[0]!.path).toBe("/v1/models");
    expect(res.destination).toBe(ENDPOINT);
    expect(res.dynamicMetadata["envoy.lb"]).toEqual({ "x-gateway-destination-endpoint": ENDPOINT });
    expect(res.body.length).toBe(0);
  });

  it("overwrites a client-supplied destination header (raw_value only, append unset)", async () => {
    const res = await routeOnce({
      body: chat("hi"),
      headers: { "x-gateway-destination-endpoint": "6.6.6.6:1" },
    });
    expect(h.router.calls[0]!.headers.get("x-gateway-destination-endpoint")).toBe("6.6.6.6:1");
    expect(res.destination).toBe(ENDPOINT);
    const set = res.setHeaders.find((s) => s.key === "x-gateway-destination-endpoint")!;
    expect(set.append).toBeUndefined();
  });

  it("propagates x-request-id, or generates one and sets it towards the pod", async () => {
    let res = await routeOnce({ body: chat("a"), headers: { "x-request-id": "req-123" } });
    expect(h.router.calls[0]!.requestId).toBe("req-123");
    expect(res.setHeaders.some((s) => s.key === "x-request-id")).toBe(false);
    res = await routeOnce({ body: chat("b") });
    const id = h.router.calls[0]!.requestId;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.upstreamHeaders.get("x-request-id")).toBe(id);
  });

  it("passes the proxy's subset hint from metadata, null when absent", async () => {
    await routeOnce({ body: chat("a"), subsetHint: ["10.0.0.5:8000", "10.0.0.6:8000"] });
    expect(h.router.calls[0]!.subsetHint).toEqual(["10.0.0.5:8000", "10.0.0.6:8000"]);
    await routeOnce({ body: chat("a"), subsetHint: [] });
    expect(h.router.calls[0]!.subsetHint).toEqual([]);
    await routeOnce({ body: chat("a"), headers: { "x-gateway-destination-endpoint-subset": "6.6.6.6:1" } });
    expect(h.router.calls[0]!.subsetHint).toBeNull();
  });

  it("sends endpoint scores in envoy.lb metadata when the router gives them", async () => {
    h.router.handler = () => ({
      kind: "routed",
      endpoint: ENDPOINT,
      endpointScores: { [ENDPOINT]: 0.9, "10.0.0.6:8000": 0.1 },
    });
    const res = await routeOnce({ body: chat("a") });
    h.router.handler = () => ({ kind: "routed", endpoint: ENDPOINT });
    expect(res.dynamicMetadata["envoy.lb"]).toEqual({
      "x-gateway-destination-endpoint": ENDPOINT,
      "x-gateway-destination-endpoint-scores": { [ENDPOINT]: 0.9, "10.0.0.6:8000": 0.1 },
    });
  });

  it("assumes FULL_DUPLEX_STREAMED when Envoy sends no protocol_config (< 1.34)", async () => {
    const body = chat("old envoy");
    const res = await routeOnce({ chunks: splitInto(body, 2), sendProtocolConfig: false });
    expect(res.destination).toBe(ENDPOINT);
    expect(res.body.equals(body)).toBe(true);
  });

  it("answers request trailers after the body (FULL_DUPLEX with trailers)", async () => {
    const body = chat("trailers");
    const res = await routeOnce({ chunks: splitInto(body, 2), trailers: { "x-trailer": "1" } });
    expect(h.router.calls[0]!.body.equals(body)).toBe(true);
    expect(res.body.equals(body)).toBe(true);
  });

  it("passes response chunks through one by one and feeds the observer", async () => {
    const seen: string[] = [];
    const observer: ResponseObserver = {
      onResponseHeaders: (hd) => seen.push(`headers ${hd.get(":status")} ${hd.get("content-type")}`),
      onResponseBody: (c, eos) => seen.push(`body ${c.length} ${eos}`),
      onDone: (o) => seen.push(`done ${o}`),
    };
    h.router.handler = () => ({ kind: "routed", endpoint: ENDPOINT, observer });
    const sse = [
      'data: {"choices":[]}\n\n',
      "data: ",
      '{"usage":{"prompt_tokens":3}}\n\n',
      "data: [DONE]\n\n",
    ];
    const big = randomBytes(150_000);
    const res = await routeOnce({
      body: chat("stream"),
      response: { headers: { "content-type": "text/event-stream" }, chunks: [...sse, big], lockstep: true },
    });
    h.router.handler = () => ({ kind: "routed", endpoint: ENDPOINT });
    expect(res.responseBody.equals(Buffer.concat([...sse.map((s) => Buffer.from(s)), big]))).toBe(true);
    expect(Math.max(...res.responseChunkSizes)).toBeLessThanOrEqual(62_000);
    expect(seen).toEqual([
      "headers 200 text/event-stream",
      ...sse.map((s) => `body ${Buffer.byteLength(s)} false`),
      "body 150000 true",
      "done complete",
    ]);
  });

  it("answers response trailers and a header-only response", async () => {
    let res = await routeOnce({
      body: chat("a"),
      response: { chunks: ["{}"], trailers: { "grpc-status": "0" } },
    });
    expect(res.responseBody.toString()).toBe("{}");
    res = await routeOnce({ body: chat("a"), response: { status: 204 } });
    expect(res.responseBody.length).toBe(0);
  });
});
