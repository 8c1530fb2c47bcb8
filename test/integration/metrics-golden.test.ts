// Golden list of every metric family kvpick exports on /metrics, with its Prometheus type, from a live stack
// with every optional part on (Redis shared index, flow control, speculative entries, dispatch credit). The
// names are what dashboards, alerts and GIE/llm-d users query: a rename, a type change (a counter registered
// as a gauge) or a family lost in a refactor fails here. `UPDATE_GOLDEN=1` rewrites the fixture on purpose.
import { readFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/observability/logger.js";
import { chat, type ObservedStack, post, startObservedStack } from "../support/observed-stack.js";
import { type RedisServer, startRedisServer } from "../support/redis-server.js";

const FIXTURE = new URL("../../../test/fixtures/metrics/families.txt", import.meta.url);

describe("/metrics families", () => {
  let redis: RedisServer;
  let stack: ObservedStack;
  let exposition = "";

  beforeAll(async () => {
    redis = await startRedisServer();
    stack = await startObservedStack({
      pods: 2,
      logger: createLogger({ level: "silent" }),
      config: {
        index: { redis: { url: redis.url, lookupTimeoutMs: 2000 } },
        flowControl: { enabled: true },
      },
    });
    expect((await post(stack.base, chat("Which families?"))).status).toBe(200);
    const r = await fetch(`http://127.0.0.1:${stack.ports.metricsPort}/metrics`);
    expect(r.status).toBe(200);
    exposition = await r.text();
  });

  afterAll(async () => {
    await stack?.close();
    await redis?.stop();
  });

  it("exports exactly the golden families with their types", () => {
    const lines = [...exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => `${m[1]} ${m[2]}`).sort();
    expect(new Set(lines).size).toBe(lines.length); // one registration per family
    const text = `${lines.join("\n")}\n`;
    if (process.env.UPDATE_GOLDEN === "1") writeFileSync(FIXTURE, text);
    expect(text).toBe(readFileSync(FIXTURE, "utf8"));
  });
});
