import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { KvEventsMetrics } from "./kv-events-metrics.js";

const seriesOf = async (registry: Registry, pod: string) =>
  (await registry.metrics())
    .split("\n")
    .filter((l) => !l.startsWith("#") && l.includes(`pod="${pod}"`))
    .map((l) => l.split(" ")[0]);

describe("KvEventsMetrics when a pod leaves", () => {
  it("removes every series of that pod, counters with a second label included, and no other pod's", async () => {
    const registry = new Registry();
    const m = new KvEventsMetrics(registry);
    for (const pod of ["10.0.0.1:8000", "10.0.0.2:8000"]) {
      const rec = m.pod(pod);
      rec.received();
      rec.applied("BlockStored");
      rec.applied("AllBlocksCleared");
      rec.lastEvent(Date.now());
      rec.replayedBatch();
      m.malformed(pod, "bad-frame");
      m.unknown(pod, "tag");
      m.seqGap(pod, 3n);
      m.publisherRestart(pod);
      m.hashMismatch(pod);
      m.heldDropped(pod);
      m.replay(pod, "complete");
      m.tokenKeys.kvTokenKeys.set({ pod }, 5);
      m.tokenKeys.kvTokenKeysSkipped.inc({ pod, reason: "no-token-ids" });
    }
    const before = await seriesOf(registry, "10.0.0.1:8000");
    expect(before.length).toBeGreaterThanOrEqual(16);

    m.podLeft("10.0.0.1:8000");
    await new Promise((r) => setImmediate(r));

    expect(await seriesOf(registry, "10.0.0.1:8000")).toEqual([]);
    expect(await seriesOf(registry, "10.0.0.2:8000")).toHaveLength(before.length);
    // The pod comes back: its recorder counts from 0 again.
    m.pod("10.0.0.1:8000").received();
    expect(await seriesOf(registry, "10.0.0.1:8000")).toContain(
      'epp_kv_event_batches_received_total{pod="10.0.0.1:8000"}',
    );
  });
});
