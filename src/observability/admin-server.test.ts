import { Counter, Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAdminServer } from "./admin-server.js";
import { createLogger } from "./logger.js";

describe("admin server", () => {
  const registry = new Registry();
  new Counter({ name: "epp_test_total", help: "test", registers: [registry] }).inc(3);
  let ready = false;
  const server = createAdminServer({
    registry,
    port: 0,
    host: "127.0.0.1",
    logger: createLogger({ destination: { write: () => {} } }),
    isReady: () => ready,
  });
  let base = "";
  beforeAll(async () => {
    base = `http://127.0.0.1:${await server.start()}`;
  });
  afterAll(async () => {
    await server.stop();
  });

  it("serves Prometheus text on /metrics", async () => {
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    expect(await res.text()).toContain("epp_test_total 3");
  });

  it("answers /healthz always and /readyz by readiness", async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    ready = true;
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: "POST" })).status).toBe(405);
  });
});
