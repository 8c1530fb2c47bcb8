import { describe, expect, it } from "vitest";
import { clientDeadlineMs, parseGoDurationMs } from "./request-deadline.js";

describe("client deadlines", () => {
  for (const [text, ms] of [
    ["1500ms", 1500],
    ["2s", 2000],
    ["1m30s", 90_000],
    ["0.5s", 500],
    ["", null],
    ["10", null],
    ["-1s", null],
    ["1s junk", null],
  ] as const) {
    it(`parses Go duration ${JSON.stringify(text)} as ${ms}`, () => expect(parseGoDurationMs(text)).toBe(ms));
  }

  it("takes the smallest of the llm-d TTL and Envoy's expected timeout, ignoring malformed values", () => {
    const h = (o: Record<string, string>) => new Map(Object.entries(o));
    expect(clientDeadlineMs(h({}))).toBeNull();
    expect(
      clientDeadlineMs(h({ "x-llm-d-inference-ttl": "3s", "x-envoy-expected-rq-timeout-ms": "1200" })),
    ).toBe(1200);
    expect(
      clientDeadlineMs(h({ "x-llm-d-inference-ttl": "nope", "x-envoy-expected-rq-timeout-ms": "x" })),
    ).toBeNull();
  });
});
