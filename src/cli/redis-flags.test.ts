import { describe, expect, it } from "vitest";
import { configProblems } from "../../test/support/config-problems.js";
import { parseConfig } from "../config/load.js";
import { configFromArgs } from "./serve-command.js";

describe("index.redis configuration", () => {
  it("is off by default, with bounded defaults ready when a URL is given", () => {
    expect(parseConfig({}).index.redis).toEqual({
      url: null,
      keyPrefix: "kvpick:",
      ttlSeconds: 3600,
      lookupTimeoutMs: 5,
      maxPendingWrites: 100_000,
      connectTimeoutMs: 2000,
    });
  });

  it("takes --redis-url and --redis-key-prefix", () => {
    const { config } = configFromArgs([
      "--endpoints=127.0.0.1:1",
      "--redis-url=redis://10.1.2.3:6379/2",
      "--redis-key-prefix=pool-a:",
    ]);
    expect(config.index.redis).toMatchObject({ url: "redis://10.1.2.3:6379/2", keyPrefix: "pool-a:" });
  });

  it("names the bad field", () => {
    expect(configProblems(() => parseConfig({ index: { redis: { url: "10.1.2.3:6379" } } }))).toEqual([
      'index.redis.url: expected redis://host:port or rediss://host:port, got "10.1.2.3:6379"',
    ]);
    expect(configProblems(() => parseConfig({ index: { redis: { lookupTimeoutMs: 0 } } }))).toEqual([
      "index.redis.lookupTimeoutMs: expected integer 1..60000, got 0",
    ]);
    expect(configProblems(() => parseConfig({ index: { redis: { ttl: 5 } } }))).toEqual([
      "index.redis.ttl: unknown field",
    ]);
  });
});
