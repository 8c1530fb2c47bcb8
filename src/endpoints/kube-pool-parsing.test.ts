// Pure parts of discovery: label selectors, the two InferencePool shapes, pod → endpoints.
import { describe, expect, it } from "vitest";
import { podObject, poolV1, poolV1alpha2 } from "../../test/support/fake-kube-api.js";
import { InvalidPoolError, parsePool, poolCollectionPath } from "./kube-inference-pool.js";
import {
  LabelSelectorError,
  matchesLabels,
  parseSelector,
  selectorFromObject,
  selectorString,
} from "./kube-label-selector.js";
import { podEndpoints, podIsCandidate } from "./kube-pod-endpoints.js";

describe("label selectors", () => {
  it("parses and matches the API server's syntax", () => {
    const reqs = parseSelector("app=vllm, tier in (a,b),!canary,zone, env!=dev,x.io/role==worker");
    const ok = { app: "vllm", tier: "b", zone: "z1", env: "prod", "x.io/role": "worker" };
    expect(matchesLabels(reqs, ok)).toBe(true);
    expect(matchesLabels(reqs, { ...ok, canary: "1" })).toBe(false);
    expect(matchesLabels(reqs, { ...ok, tier: "c" })).toBe(false);
    expect(matchesLabels(reqs, { ...ok, env: "dev" })).toBe(false);
    expect(matchesLabels(parseSelector(""), {})).toBe(true);
    expect(selectorString(parseSelector("b=2,a=1"))).toBe("a=1,b=2");
    expect(() => parseSelector("app=")).not.toThrow(); // empty values are legal
    expect(() => parseSelector("a in ()")).toThrow(LabelSelectorError);
    expect(() => parseSelector("=x")).toThrow(LabelSelectorError);
  });

  it("reads matchLabels and matchExpressions", () => {
    const reqs = selectorFromObject({
      matchLabels: { app: "vllm" },
      matchExpressions: [
        { key: "gpu", operator: "In", values: ["h100", "a100"] },
        { key: "spot", operator: "DoesNotExist" },
      ],
    });
    expect(selectorString(reqs)).toBe("!spot,app=vllm,gpu in (a100,h100)");
    expect(matchesLabels(reqs, { app: "vllm", gpu: "h100" })).toBe(true);
    expect(matchesLabels(reqs, { app: "vllm", gpu: "h100", spot: "" })).toBe(false);
  });
});

describe("InferencePool shapes", () => {
  it("reads v1 (matchLabels, targetPorts) and v1alpha2 (label map, targetPortNumber)", () => {
    expect(parsePool(poolV1("p", { app: "vllm" }, [8000, 8001]))).toMatchObject({
      selectorText: "app=vllm",
      targetPorts: [8000, 8001],
    });
    expect(parsePool(poolV1alpha2("p", { app: "vllm" }, 8000))).toMatchObject({
      selectorText: "app=vllm",
      targetPorts: [8000],
    });
    expect(poolCollectionPath("inference.networking.k8s.io", "ns")).toBe(
      "/apis/inference.networking.k8s.io/v1/namespaces/ns/inferencepools",
    );
    expect(poolCollectionPath("inference.networking.x-k8s.io", "ns")).toBe(
      "/apis/inference.networking.x-k8s.io/v1alpha2/namespaces/ns/inferencepools",
    );
  });

  it("refuses pools that cannot be served", () => {
    expect(() => parsePool(poolV1("p", {}, [8000]))).toThrow(InvalidPoolError); // would select everything
    expect(() => parsePool(poolV1("p", { a: "b" }, []))).toThrow(InvalidPoolError);
    expect(() => parsePool(poolV1("p", { a: "b" }, [1, 2, 3, 4, 5, 6, 7, 8, 9]))).toThrow(InvalidPoolError);
    expect(() => parsePool(poolV1("p", { a: "b" }, [70000]))).toThrow(InvalidPoolError);
    expect(() => parsePool({ spec: { selector: { a: "b" } } })).toThrow(InvalidPoolError);
    expect(() => poolCollectionPath("example.com", "ns")).toThrow(InvalidPoolError);
  });
});

describe("pod → endpoints", () => {
  it("is a candidate only while Running, Ready, with an IP and not terminating", () => {
    expect(podIsCandidate(podObject("a", "10.0.0.1"))).toBe(true);
    expect(podIsCandidate(podObject("a", "10.0.0.1", { ready: false }))).toBe(false);
    expect(podIsCandidate(podObject("a", "10.0.0.1", { terminating: true }))).toBe(false);
    expect(podIsCandidate(podObject("a", "10.0.0.1", { phase: "Succeeded" }))).toBe(false);
    expect(podIsCandidate(podObject("a", null))).toBe(false);
  });

  it("keeps a NotReady pod as a non-candidate member and drops terminating ones", () => {
    expect(podEndpoints(podObject("a", "10.0.0.1", { ready: false }), [8000])).toEqual([
      {
        address: "10.0.0.1:8000",
        ip: "10.0.0.1",
        port: 8000,
        name: "default/a",
        ready: false,
        pod: "default/a",
        rank: 0,
      },
    ]);
    expect(podEndpoints(podObject("a", "10.0.0.1", { terminating: true }), [8000])).toEqual([]);
    expect(podEndpoints(podObject("a", "fd00::1"), [8000, 8001]).map((e) => [e.address, e.name])).toEqual([
      ["[fd00::1]:8000", "default/a-rank-0"],
      ["[fd00::1]:8001", "default/a-rank-1"],
    ]);
  });
});
