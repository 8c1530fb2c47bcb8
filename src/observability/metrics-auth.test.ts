// KubeMetricsAuth against the fake API server's real-shaped TokenReview / SubjectAccessReview endpoints,
// through the real KubeApi client over HTTP.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FakeKubeApi } from "../../test/support/fake-kube-api.js";
import { KubeApi } from "../endpoints/kube-api.js";
import { createLogger } from "./logger.js";
import { KubeMetricsAuth } from "./metrics-auth.js";

let api: FakeKubeApi;
let lines: string[];
let clock: number;

beforeEach(async () => {
  api = await new FakeKubeApi().start();
  api.addToken("reader-token", { username: "system:serviceaccount:monitoring:prometheus" });
  api.addToken("other-token", { username: "alice", groups: ["devs"] });
  api.allowNonResource("user:system:serviceaccount:monitoring:prometheus");
  lines = [];
  clock = 1_000_000;
});
afterEach(() => api.stop());

function auth(options: { maxEntries?: number } = {}): KubeMetricsAuth {
  return new KubeMetricsAuth({
    client: new KubeApi(api.kubeConfig(), { requestTimeoutMs: 2000 }),
    logger: createLogger({ level: "debug", destination: { write: (s: string) => void lines.push(s) } }),
    allowTtlMs: 60_000,
    denyTtlMs: 10_000,
    now: () => clock,
    ...options,
  });
}

describe("KubeMetricsAuth", () => {
  it("allows a token whose user may get /metrics, 403 for others, 401 for unknown or missing tokens", async () => {
    const a = auth();
    expect(await a.check("Bearer reader-token")).toEqual({ allowed: true });
    expect(await a.check("Bearer other-token")).toEqual({
      allowed: false,
      status: 403,
      reason: "Authorization denied for user alice",
    });
    for (const header of [undefined, "", "Basic abc", "Bearer", "Bearer not-a-token"])
      expect([header, await a.check(header)]).toMatchObject([header, { allowed: false, status: 401 }]);
  });

  it("grants by group as RBAC does", async () => {
    api.allowNonResource("group:devs");
    expect(await auth().check("Bearer other-token")).toEqual({ allowed: true });
  });

  it("caches allowed verdicts for the allow TTL and refusals for the shorter deny TTL", async () => {
    const a = auth();
    await a.check("Bearer reader-token");
    await a.check("Bearer other-token");
    expect(a.reviews).toBe(4); // TokenReview + SubjectAccessReview each
    await a.check("Bearer reader-token");
    await a.check("Bearer other-token");
    expect(a.reviews).toBe(4);
    // After the deny TTL a refused token is asked again: a new RoleBinding takes effect.
    clock += 10_001;
    api.allowNonResource("user:alice");
    expect(await a.check("Bearer other-token")).toEqual({ allowed: true });
    expect(await a.check("Bearer reader-token")).toEqual({ allowed: true });
    expect(a.reviews).toBe(6);
    clock += 60_001;
    await a.check("Bearer reader-token");
    expect(a.reviews).toBe(8);
  });

  it("shares one review among concurrent scrapes and keeps the cache bounded", async () => {
    const a = auth({ maxEntries: 2 });
    await Promise.all(Array.from({ length: 10 }, () => a.check("Bearer reader-token")));
    expect(a.reviews).toBe(2);
    for (const t of ["x1", "x2", "x3"]) await a.check(`Bearer ${t}`); // unknown tokens: one TokenReview each
    expect(a.reviews).toBe(5);
    await a.check("Bearer reader-token"); // evicted by the three newer tokens
    expect(a.reviews).toBe(7);
  });

  it("answers 503 without caching when the API server fails, and never logs a token", async () => {
    const a = auth();
    api.failWith = 500;
    expect(await a.check("Bearer reader-token")).toMatchObject({ allowed: false, status: 503 });
    api.failWith = null;
    expect(await a.check("Bearer reader-token")).toEqual({ allowed: true });
    await a.check("Bearer other-token");
    expect(lines.join("")).not.toMatch(/reader-token|other-token/);
    expect(lines.join("")).toContain("token review failed");
  });
});
