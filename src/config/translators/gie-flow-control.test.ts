import { describe, expect, it } from "vitest";
import { quantityBytes, translateFlowControl } from "./gie-flow-control.js";

describe("GIE flowControl → kvpick flowControl", () => {
  it("reads Kubernetes quantities", () => {
    expect(quantityBytes("1Gi")).toBe(2 ** 30);
    expect(quantityBytes("500M")).toBe(5e8);
    expect(quantityBytes(1024)).toBe(1024);
    expect(quantityBytes("lots")).toBeNull();
  });

  it("maps the gate, maxBytes, TTL, band limits and detector thresholds; reports what it does not run", () => {
    const t = translateFlowControl(
      {
        maxBytes: "2Gi",
        defaultRequestTTL: "45s",
        priorityBands: [
          { priority: 1, maxBytes: "100Mi", fairnessPolicyRef: "global-strict-fairness-policy" },
          { priority: 0, maxBytes: "200Mi", maxRequests: 50 },
        ],
      },
      true,
      { queueDepthThreshold: 8, kvCacheUtilThreshold: 0.7 },
    );
    expect(t.problems).toEqual([]);
    expect(t.config).toEqual({
      enabled: true,
      maxBytes: 2 * 2 ** 30,
      requestTtlMs: 45_000,
      maxBytesPerBand: 200 * 2 ** 20,
      maxRequestsPerBand: 50,
      queueDepthThreshold: 8,
      kvCacheUtilThreshold: 0.7,
    });
    expect(t.ignored.join("\n")).toContain("global-strict-fairness-policy");
  });

  it("stays off without the feature gate, and names bad fields in the user's document", () => {
    expect(translateFlowControl({ maxBytes: "1Gi" }, false, null).config.enabled).toBeUndefined();
    const bad = translateFlowControl({ maxBytes: "huge", defaultRequestTTL: "soon", bogus: 1 }, true, null);
    expect(bad.problems).toEqual(["flowControl.bogus: unknown field"]);
    const bad2 = translateFlowControl({ maxBytes: "huge", defaultRequestTTL: "soon" }, true, null);
    expect(bad2.problems).toEqual([
      'flowControl.maxBytes: expected bytes or a quantity such as "1Gi"',
      'flowControl.defaultRequestTTL: expected a duration such as "30s"',
    ]);
  });
});
