import { describe, expect, it } from "vitest";
import { SchedulingCycle } from "../../cycle-state.js";
import { aRequest, anEndpoint } from "../../scheduling.fixture.js";
import type { Endpoint, Scorer } from "../../types.js";
import { sessionAffinityParams, sessionAffinityScorer } from "./session-affinity-scorer.js";

const make = (params: object, now: () => number = () => 0) =>
  sessionAffinityScorer.create("s", sessionAffinityParams.parse(params), {
    random: Math.random,
    now,
  }) as Scorer;

function cycleWith(headers: Record<string, string>) {
  return new SchedulingCycle({ ...aRequest(0), headers: new Map(Object.entries(headers)) }, null);
}

describe("session-affinity-scorer", () => {
  const pods: Endpoint[] = [anEndpoint("10.0.0.1:80", {}), anEndpoint("10.0.0.2:80", {})];

  it("scores 1 for the session's last pod once it picked one, 0 elsewhere and without a session", () => {
    const s = make({});
    const c = cycleWith({ "x-session-token": "abc" });
    expect(Array.from(s.score(c, pods))).toEqual([0, 0]);
    s.preRequest?.(c, { endpoint: pods[1]!, candidates: pods, index: 1 });
    expect(Array.from(s.score(c, pods))).toEqual([0, 1]);
    expect(Array.from(s.score(cycleWith({}), pods))).toEqual([0, 0]);
  });

  it("honours a configured header, forgets after the TTL and stays bounded", () => {
    let t = 0;
    const s = make({ sessionHeader: "x-session-id", ttlMs: 1000, maxSessions: 2 }, () => t);
    const pick = (session: string, i: number) =>
      s.preRequest?.(cycleWith({ "x-session-id": session }), {
        endpoint: pods[i]!,
        candidates: pods,
        index: i,
      });
    pick("a", 0);
    t = 1001;
    expect(Array.from(s.score(cycleWith({ "x-session-id": "a" }), pods))).toEqual([0, 0]);
    pick("a", 0);
    pick("b", 1);
    pick("c", 1); // "a" is the least recently used: forgotten
    expect(Array.from(s.score(cycleWith({ "x-session-id": "a" }), pods))).toEqual([0, 0]);
    expect(Array.from(s.score(cycleWith({ "x-session-id": "c" }), pods))).toEqual([0, 1]);
  });

  it("accepts llm-d's token (base64 namespace/pod) for a pod it never picked itself", () => {
    const named = [
      { ...pods[0]!, name: "vllm-a" },
      { ...pods[1]!, name: "vllm-b", pod: "default/vllm-b" },
    ];
    const token = Buffer.from("default/vllm-b").toString("base64");
    expect(Array.from(make({}).score(cycleWith({ "x-session-token": token }), named))).toEqual([0, 1]);
  });
});
