// Pool following against a real EndpointStore: what the KV-event side is told as endpoints come and go.
import { describe, expect, it } from "vitest";
import { EndpointStore } from "../endpoints/endpoint-store.js";
import { createLogger } from "../observability/logger.js";
import { PoolFollowing } from "./pool-following.js";

const logger = createLogger({ level: "silent" });
const spec = (ip: string, port: number, rank?: number) => ({
  address: ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`,
  ip,
  port,
  name: null,
  ready: true,
  ...(rank === undefined ? {} : { rank }),
});

function follow(mode: "bind" | "connect", replayPort: number | null) {
  const pool = new EndpointStore({ staleAfterMs: 60_000, logger });
  const calls: string[] = [];
  const following = new PoolFollowing({
    config: { mode, port: 5557, replayPort },
    pool,
    logger,
    events: {
      subscribe: (pod, ep) => calls.push(`subscribe ${pod} ${ep ?? "default"}`),
      unsubscribe: (pod) => calls.push(`unsubscribe ${pod}`),
      replay: (pod) => calls.push(`replay ${pod}`),
      forget: (pod) => calls.push(`forget ${pod}`),
      podStates: () => [],
    },
  });
  following.start();
  return { pool, calls, following };
}

describe("PoolFollowing", () => {
  it("connect mode: dials each endpoint (DP rank on port + rank) and forgets it when it leaves", () => {
    const { pool, calls, following } = follow("connect", null);
    pool.replaceAll([spec("10.0.0.1", 8000), spec("10.0.0.2", 8000, 1)]);
    pool.replaceAll([spec("10.0.0.2", 8000, 1)]);
    expect(calls).toEqual([
      "subscribe 10.0.0.1:8000 default",
      "subscribe 10.0.0.2:8000 tcp://10.0.0.2:5558",
      "unsubscribe 10.0.0.1:8000",
      "forget 10.0.0.1:8000",
    ]);
    expect(following.replayEndpoint("10.0.0.2:8000", 0)).toBeNull(); // no replay port
    following.stop(0);
    pool.replaceAll([]);
    expect(calls).toHaveLength(4); // no longer following
  });

  it("bind mode: replays once per IP on join, admits members by ip or ip:port, forgets the IP with its last endpoint", () => {
    const { pool, calls, following } = follow("bind", 5600);
    pool.replaceAll([spec("10.0.0.1", 8000, 0), spec("10.0.0.1", 8001, 1), spec("fd00::1", 8000)]);
    expect(calls).toEqual(["replay 10.0.0.1", "replay fd00::1"]);
    expect(following.admits("10.0.0.1")).toBe(true);
    expect(following.admits("10.0.0.1:8001")).toBe(true);
    expect(following.admits("10.0.0.9")).toBe(false);
    expect(following.replayEndpoint("10.0.0.1:8001", 1)).toBe("tcp://10.0.0.1:5601");
    expect(following.replayEndpoint("10.0.0.1", 1)).toBe("tcp://10.0.0.1:5601");
    expect(following.replayEndpoint("fd00::1", null)).toBe("tcp://[fd00::1]:5600");
    expect(following.replayEndpoint("10.0.0.9", 0)).toBeNull(); // a topic is chosen by its sender
    calls.length = 0;
    pool.replaceAll([spec("10.0.0.1", 8001, 1)]);
    expect(calls.sort()).toEqual(["forget 10.0.0.1:8000", "forget [fd00::1]:8000", "forget fd00::1"]);
    calls.length = 0;
    pool.replaceAll([]);
    expect(calls).toEqual(["forget 10.0.0.1:8001", "forget 10.0.0.1"]);
    following.stop(0);
  });
});
