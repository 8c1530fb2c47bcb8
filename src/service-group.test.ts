import { describe, expect, it } from "vitest";
import { pino } from "pino";
import { type Service, ServiceGroup } from "./service-group.js";

const silent = pino({ level: "silent" });

function recording(log: string[], name: string, failStart = false, failStop = false): Service {
  return {
    name,
    async start() {
      if (failStart) throw new Error(`${name} cannot start`);
      log.push(`start ${name}`);
    },
    async stop(graceMs: number) {
      log.push(`stop ${name} ${graceMs}`);
      if (failStop) throw new Error(`${name} cannot stop`);
    },
  };
}

describe("ServiceGroup", () => {
  it("starts services in order and stops them in reverse with the grace period", async () => {
    const log: string[] = [];
    const group = new ServiceGroup([recording(log, "a"), recording(log, "b"), recording(log, "c")], silent);
    await group.start();
    await group.stop(250);
    expect(log).toEqual(["start a", "start b", "start c", "stop c 250", "stop b 250", "stop a 250"]);
  });

  it("stops the services already started when a later one fails to start", async () => {
    const log: string[] = [];
    const group = new ServiceGroup(
      [recording(log, "a"), recording(log, "b", true), recording(log, "c")],
      silent,
    );
    await expect(group.start()).rejects.toThrow("b cannot start");
    expect(log).toEqual(["start a", "stop a 0"]);
  });

  it("keeps stopping the rest when one service fails to stop, and stops each only once", async () => {
    const log: string[] = [];
    const group = new ServiceGroup([recording(log, "a"), recording(log, "b", false, true)], silent);
    await group.start();
    await group.stop(0);
    await group.stop(0);
    expect(log).toEqual(["start a", "start b", "stop b 0", "stop a 0"]);
  });
});
