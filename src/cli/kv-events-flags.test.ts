// The replay / pool-filter / metrics-token flags of `kvpick serve` and the replay flags of `kvpick sim`.
import { describe, expect, it } from "vitest";
import { FlagError } from "./flags.js";
import { configFromArgs } from "./serve-command.js";
import { simSettings } from "./sim-command.js";

describe("kvpick serve KV-event and metrics flags", () => {
  it("map onto kvEvents.replayPort, kvEvents.acceptUnknownPods and server.metricsBearerTokenFile", () => {
    const { config } = configFromArgs([
      "--endpoints=10.0.0.1:8000",
      "--hash-seed=42",
      "--kv-events-replay-port=5558",
      "--kv-events-accept-unknown-pods",
      "--metrics-bearer-token-file=/var/run/secrets/metrics/token",
    ]);
    expect(config.kvEvents).toMatchObject({ replayPort: 5558, acceptUnknownPods: true });
    expect(config.server.metricsBearerTokenFile).toBe("/var/run/secrets/metrics/token");
  });

  it("default to replay off, pool members only, open /metrics", () => {
    const { config } = configFromArgs(["--endpoints=10.0.0.1:8000", "--hash-seed=42"]);
    expect(config.kvEvents).toMatchObject({
      replayPort: null,
      acceptUnknownPods: false,
      replayCooldownMs: 30_000,
      maxConcurrentReplays: 8,
    });
    expect(config.index.degradedCreditFactor).toBe(0.5);
    expect(config.server.metricsBearerTokenFile).toBeNull();
  });

  it("names the bad field", () => {
    expect(() => configFromArgs(["--endpoints=10.0.0.1:8000", "--kv-events-replay-port=70000"])).toThrow(
      /kvEvents\.replayPort/,
    );
  });
});

describe("kvpick sim replay flags", () => {
  it("bind a replay socket per pod with the chosen reply layout and ring size", () => {
    const s = simSettings({
      "kv-events-replay-port": 5558,
      "kv-events-replay-layout": "v0.26",
      "kv-events-buffer-steps": 500,
    });
    expect(s.replay).toEqual({ port: 5558, layout: "v0.26", bufferSteps: 500 });
    expect(simSettings({}).replay).toBeNull();
    expect(() => simSettings({ "kv-events-replay-layout": "v9" })).toThrow(FlagError);
  });

  it("--same-port puts every pod on --base-port (one loopback IP each)", () => {
    expect(simSettings({ "same-port": true }).samePort).toBe(true);
    expect(simSettings({}).samePort).toBe(false);
  });
});
