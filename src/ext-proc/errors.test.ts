// Every way a request ends without routing: an ImmediateResponse with the contract's status, an
// OpenAI-style JSON body whose message keeps GIE's `inference error: <Code> - <msg>` text, and a clean
// (OK) end of the stream.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { splitInto } from "../../test/support/envoy-client.js";
import { chat, type Harness, SERVING_MODES, startHarness } from "../../test/support/ext-proc-harness.js";
import { EppError, type ErrorCode } from "../errors.js";

describe.each(SERVING_MODES)("ext_proc errors → ImmediateResponse ($mode)", ({ thread }) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ thread, maxBodyBytes: 1_000 });
  });
  afterAll(async () => {
    h.router.handler = () => ({ kind: "routed", endpoint: "10.0.0.5:8000" });
    await h.stop();
  });

  const cases: Array<{ code: ErrorCode; status: number; gie: string; type: string; retryAfter: boolean }> = [
    {
      code: "EPP_BAD_REQUEST",
      status: 400,
      gie: "BadRequest",
      type: "invalid_request_error",
      retryAfter: false,
    },
    {
      code: "EPP_OVERLOADED",
      status: 429,
      gie: "ResourceExhausted",
      type: "rate_limit_error",
      retryAfter: true,
    },
    {
      code: "EPP_NO_ENDPOINTS",
      status: 503,
      gie: "ServiceUnavailable",
      type: "service_unavailable_error",
      retryAfter: true,
    },
    { code: "EPP_INTERNAL", status: 500, gie: "Internal", type: "server_error", retryAfter: false },
  ];
  for (const c of cases) {
    it(`answers a ${c.code} rejection with ${c.status} and a JSON body`, async () => {
      h.router.handler = () => ({
        kind: "rejected",
        error: new EppError(c.code, "model not found in request body"),
      });
      const res = await h.client.process({
        chunks: splitInto(chat("x"), 2),
        headers: { "x-request-id": "r-1" },
      });
      expect(res.violations).toEqual([]);
      expect(res.destination).toBeNull();
      expect(res.immediate?.status).toBe(c.status);
      expect(res.immediate?.json).toEqual({
        error: {
          message: `inference error: ${c.gie} - model not found in request body`,
          type: c.type,
          code: c.code,
        },
      });
      expect(res.immediate?.headers.get("content-type")).toBe("application/json");
      expect(res.immediate?.headers.get("x-request-id")).toBe("r-1");
      expect(res.immediate?.headers.has("retry-after")).toBe(c.retryAfter);
      expect(res.grpcStatus).toBe(0);
    });
  }

  it("answers 413 as soon as the body exceeds the limit, without calling the router", async () => {
    h.router.calls = [];
    const res = await h.client.process({
      chunks: [Buffer.alloc(600, 97), Buffer.alloc(600, 97), Buffer.alloc(600, 97)],
    });
    expect(res.immediate?.status).toBe(413);
    expect((res.immediate!.json as { error: { code: string } }).error.code).toBe("EPP_BODY_TOO_LARGE");
    expect(h.router.calls).toHaveLength(0);
    // A body of exactly the limit is fine.
    h.router.handler = () => ({ kind: "routed", endpoint: "10.0.0.5:8000" });
    const ok = await h.client.process({ body: Buffer.alloc(1_000, 97) });
    expect(ok.destination).toBe("10.0.0.5:8000");
  });

  it("answers 413 for an oversized BUFFERED body", async () => {
    const res = await h.client.process({ body: Buffer.alloc(5_000, 97), mode: "BUFFERED" });
    expect(res.violations).toEqual([]);
    expect(res.immediate?.status).toBe(413);
  });

  it("answers 500 and logs the stack when the router throws", async () => {
    h.router.handler = () => {
      throw new TypeError("boom in router");
    };
    const res = await h.client.process({ body: chat("x") });
    expect(res.immediate?.status).toBe(500);
    expect((res.immediate!.json as { error: { message: string } }).error.message).toBe(
      "inference error: Internal - internal error while routing the request",
    );
    // The serving thread's lines reach the log destination through the main thread: wait for them.
    await vi.waitFor(() => expect(h.logs.find((l) => l.includes("boom in router"))).toContain("stack"));
  });

  it("answers a thrown EppError with its own status", async () => {
    h.router.handler = async () => {
      throw new EppError("EPP_NO_ENDPOINTS", "no ready endpoint");
    };
    const res = await h.client.process({ method: "GET", path: "/v1/models" });
    expect(res.immediate?.status).toBe(503);
  });

  it("counts outcomes by status code", async () => {
    const text = await h.metrics.registry.getSingleMetricAsString("epp_requests_total");
    for (const code of ["200", "400", "413", "429", "500", "503"]) expect(text).toContain(`code="${code}"`);
  });
});
