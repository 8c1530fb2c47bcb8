// BUFFERED request/response body mode (older GIE, Envoy Gateway `request.body: Buffered`): headers are
// answered at once, the routing answer rides on the single body response with a matching content-length.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  chat,
  ENDPOINT,
  type Harness,
  SERVING_MODES,
  startHarness,
} from "../../test/support/ext-proc-harness.js";

describe.each(SERVING_MODES)("ext_proc server in BUFFERED mode ($mode)", ({ thread }) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ thread });
  });
  afterAll(async () => {
    await h.stop();
  });

  it("routes on the body response with destination, content-length, body and metadata", async () => {
    const body = chat("héllo buffered 世界");
    h.router.calls = [];
    const res = await h.client.process({
      body,
      mode: "BUFFERED",
      headers: { "content-length": String(body.length) },
    });
    expect(res.violations).toEqual([]);
    expect(h.router.calls[0]!.body.equals(body)).toBe(true);
    expect(res.destination).toBe(ENDPOINT);
    expect(res.upstreamHeaders.get("content-length")).toBe(String(body.length));
    expect(res.body.equals(body)).toBe(true);
    expect(res.clearRouteCache).toBe(true);
    expect(res.dynamicMetadata["envoy.lb"]).toEqual({ "x-gateway-destination-endpoint": ENDPOINT });
    expect(res.grpcStatus).toBe(0);
  });

  it("routes a header-only request on the headers response", async () => {
    const res = await h.client.process({ method: "GET", path: "/v1/models", mode: "BUFFERED" });
    expect(res.violations).toEqual([]);
    expect(res.destination).toBe(ENDPOINT);
  });

  it("answers trailers after the body and passes a buffered response through", async () => {
    const res = await h.client.process({
      body: chat("t"),
      mode: "BUFFERED",
      trailers: { "x-t": "1" },
      response: { chunks: ['{"usage":', '{"prompt_tokens":5}}'] },
    });
    expect(res.violations).toEqual([]);
    expect(res.destination).toBe(ENDPOINT);
    expect(res.responseBody.toString()).toBe('{"usage":{"prompt_tokens":5}}');
  });
});
