import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { FlowControlMetrics } from "./flow-control-metrics.js";

describe("FlowControlMetrics", () => {
  it("uses GIE's names and keeps client-chosen label values bounded", async () => {
    const registry = new Registry();
    const m = new FlowControlMetrics(registry, "pool");
    for (let i = 0; i < 500; i++) {
      m.queued(`tenant-${i}`, 0, 1, 10);
      m.finished(`tenant-${i}`, 0, `model-${i}`, "Dispatched", 0.01);
      m.queued(`tenant-${i}`, 0, -1, -10);
    }
    m.cycle(1e-5, 0.5);
    const json = await registry.getMetricsAsJSON();
    const names = json.map((x) => x.name).sort();
    expect(names).toEqual([
      "inference_extension_flow_control_dispatch_cycle_duration_seconds",
      "inference_extension_flow_control_pool_saturation",
      "inference_extension_flow_control_queue_bytes",
      "inference_extension_flow_control_queue_size",
      "inference_extension_flow_control_request_queue_duration_seconds",
    ]);
    const size = json.find((x) => x.name === "inference_extension_flow_control_queue_size")!;
    expect(size.values.length).toBeLessThanOrEqual(101);
    expect(size.values.every((v) => v.value === 0)).toBe(true);
    const text = await registry.metrics();
    const series = new Set(
      text
        .split("\n")
        .filter((l) => l.includes("_count{"))
        .map((l) => l.split(" ")[0]),
    );
    expect(series.size).toBeLessThanOrEqual(101);
  });
});
