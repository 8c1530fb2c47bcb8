import { describe, expect, it } from "vitest";
import { ConfigError } from "../errors.js";
import { parseEndpointAddress, parseEndpointList } from "./parse-endpoints.js";

function problemsOf(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error("expected a ConfigError");
}

describe("parseEndpointList", () => {
  it("parses a comma list and a list of strings into ready specs, in order", () => {
    expect(parseEndpointList("10.0.0.5:8000, 10.0.0.6:8000")).toEqual([
      { address: "10.0.0.5:8000", ip: "10.0.0.5", port: 8000, name: null, ready: true },
      { address: "10.0.0.6:8000", ip: "10.0.0.6", port: 8000, name: null, ready: true },
    ]);
    expect(parseEndpointList(["10.0.0.5:8000,10.0.0.6:8001", "[FD00::5]:80"]).map((s) => s.address)).toEqual([
      "10.0.0.5:8000",
      "10.0.0.6:8001",
      "[fd00::5]:80",
    ]);
    expect(parseEndpointList("")).toEqual([]);
    expect(parseEndpointList([])).toEqual([]);
  });

  it("names every bad entry with its index and reason", () => {
    const problems = problemsOf(() =>
      parseEndpointList(
        "10.0.0.5,pod-a:8000,10.0.0.7:99999,10.0.0.8:80x,,fd00::1:80,10.0.0.9:1,10.0.0.9:1",
        "--endpoints",
      ),
    );
    expect(problems).toEqual([
      '--endpoints[0] "10.0.0.5": missing port (expected ip:port)',
      '--endpoints[1] "pod-a:8000": "pod-a" is not an IP address (hostnames are not routable by Envoy)',
      '--endpoints[2] "10.0.0.7:99999": port 99999 out of range 1..65535',
      '--endpoints[3] "10.0.0.8:80x": port "80x" is not a number',
      '--endpoints[4] "": empty entry',
      '--endpoints[5] "fd00::1:80": IPv6 addresses must be bracketed: [ip]:port',
      '--endpoints[7] "10.0.0.9:1": duplicate endpoint 10.0.0.9:1',
    ]);
  });

  it("rejects port 0 and a bracket without a port", () => {
    expect(parseEndpointAddress("10.0.0.1:0")).toEqual({ ok: false, reason: "port 0 out of range 1..65535" });
    expect(parseEndpointAddress("[::1]")).toEqual({ ok: false, reason: "expected [ipv6]:port" });
  });
});
