import { describe, expect, it } from "vitest";
import { createLogger } from "../observability/logger.js";
import type { PodStateView } from "./pod-state.js";
import { SilentPods } from "./silent-pods.js";

const state = (podId: string): PodStateView => ({
  podId,
  model: "m",
  lastEventMs: 0,
  publishers: [],
  stale: false,
  accuracy: "exact",
  degradedReason: null,
  replays: 0,
  hashChecks: 0,
  hashMismatches: 0,
});

describe("SilentPods", () => {
  it("warns once per endpoint that never published, after the grace period, and notes recovery", () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger({
      level: "info",
      destination: { write: (s: string) => void lines.push(JSON.parse(s)) },
    });
    let now = 0;
    let states: PodStateView[] = [state("10.0.0.1")];
    const watch = new SilentPods({
      members: () => [
        { address: "10.0.0.1:8000", ip: "10.0.0.1" },
        { address: "10.0.0.2:8000", ip: "10.0.0.2" },
      ],
      podStates: () => states,
      logger,
      graceMs: 1000,
      now: () => now,
    });
    watch.check();
    expect(lines).toHaveLength(0);
    now = 2000;
    watch.check();
    watch.check();
    expect(lines.filter((l) => l.level === "warn").map((l) => l.endpoint)).toEqual(["10.0.0.2:8000"]);
    expect(watch.seen()).toEqual(
      new Map([
        ["10.0.0.1:8000", 1],
        ["10.0.0.2:8000", 0],
      ]),
    );
    states = [state("10.0.0.1"), state("10.0.0.2:8000")];
    watch.check();
    expect(lines.at(-1)).toMatchObject({
      level: "info",
      endpoint: "10.0.0.2:8000",
      msg: "KV events now arriving from pod",
    });
  });
});
