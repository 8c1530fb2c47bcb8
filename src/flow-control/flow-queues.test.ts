import { describe, expect, it } from "vitest";
import { FlowQueues, type QueueItem } from "./flow-queues.js";

const item = (priority: number, flow: string, bytes = 10, tag = `${flow}${priority}`) => ({
  priority,
  flow,
  bytes,
  gone: false,
  tag,
});
type Item = QueueItem & { tag: string };
const unbounded = { maxRequestsPerBand: 0, maxBytesPerBand: 0, maxBytes: 0 };
const popAll = (q: FlowQueues<Item>) => q.drain().map((i) => i.tag);

describe("FlowQueues", () => {
  it("names the highest band holding a live item (what a band's saturation point is checked against)", () => {
    const q = new FlowQueues<Item>(unbounded);
    expect(q.topPriority()).toBeNull();
    const hi = item(5, "z");
    q.push(item(0, "a"));
    q.push(hi);
    expect(q.topPriority()).toBe(5);
    q.remove(hi);
    expect(q.topPriority()).toBe(0);
    q.pop();
    expect(q.topPriority()).toBeNull();
  });

  it("serves the highest priority first, then flows round-robin, each flow first-come first-served", () => {
    const q = new FlowQueues<Item>(unbounded);
    for (const t of ["a1", "a2", "a3", "a4"]) q.push(item(0, "a", 10, t));
    q.push(item(0, "b", 10, "b1"));
    q.push(item(0, "c", 10, "c1"));
    q.push(item(0, "c", 10, "c2"));
    q.push(item(5, "z", 10, "z1"));
    q.push(item(-1, "s", 10, "s1"));
    expect(popAll(q)).toEqual(["z1", "a1", "b1", "c1", "a2", "c2", "a3", "a4", "s1"]);
    expect(q.size).toBe(0);
    expect(q.bytes).toBe(0);
  });

  it("skips removed items and counts them out at once", () => {
    const q = new FlowQueues<Item>(unbounded);
    const a = item(0, "a", 10, "a1");
    const b = item(0, "b", 7, "b1");
    q.push(a);
    q.push(b);
    q.push(item(0, "a", 10, "a2"));
    q.remove(a);
    q.remove(a);
    expect(q.size).toBe(2);
    expect(q.bytes).toBe(17);
    q.remove(b);
    expect(q.flowBusy("b")).toBe(false);
    q.push(item(0, "b", 1, "b2"));
    expect(popAll(q)).toEqual(["a2", "b2"]);
  });

  it("refuses by band count, band bytes and global bytes", () => {
    const q = new FlowQueues<Item>({ maxRequestsPerBand: 2, maxBytesPerBand: 25, maxBytes: 60 });
    q.push(item(0, "a"));
    q.push(item(0, "a"));
    expect(q.refusal(item(0, "a"))).toBe("band-full");
    expect(q.refusal(item(1, "a", 30))).toBe("band-full");
    q.push(item(1, "a", 15));
    expect(q.refusal(item(2, "a", 26))).toBe("pool-full");
    expect(q.refusal(item(2, "a", 5))).toBeNull();
    expect(q.aheadOf(1)).toBe(1);
    expect(q.aheadOf(0)).toBe(3);
  });
});
