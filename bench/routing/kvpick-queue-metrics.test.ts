// kvpickFigures reads kvpick's flow-control exposition as the live benchmark needs it.
import { describe, expect, it } from "vitest";
import { kvpickFigures } from "./kvpick-queue-metrics.js";

const Q = "inference_extension_flow_control_request_queue_duration_seconds";
const labels = (flow: string, priority: number, outcome: string) =>
  `fairness_id="${flow}",priority="${priority}",outcome="${outcome}",inference_pool="bench",model_name="m",target_model_name="m"`;
const TEXT = [
  `# HELP ${Q} Total time requests spend in the flow control layer.`,
  `${Q}_bucket{le="1",${labels("interactive", 1, "Dispatched")}} 4`,
  `${Q}_bucket{le="10",${labels("interactive", 1, "Dispatched")}} 4`,
  `${Q}_bucket{le="+Inf",${labels("interactive", 1, "Dispatched")}} 4`,
  `${Q}_sum{${labels("interactive", 1, "Dispatched")}} 2`,
  `${Q}_count{${labels("interactive", 1, "Dispatched")}} 4`,
  `${Q}_bucket{le="1",${labels("batch", 0, "Dispatched")}} 0`,
  `${Q}_bucket{le="10",${labels("batch", 0, "Dispatched")}} 4`,
  `${Q}_bucket{le="+Inf",${labels("batch", 0, "Dispatched")}} 6`,
  `${Q}_sum{${labels("batch", 0, "Dispatched")}} 60`,
  `${Q}_count{${labels("batch", 0, "Dispatched")}} 6`,
  `${Q}_count{${labels("batch", 0, "EvictedTTL")}} 3`,
  `inference_objective_request_total{model_name="m",target_model_name="m",priority="1"} 4`,
  `inference_objective_request_total{model_name="m",target_model_name="m",priority="0"} 6`,
].join("\n");

describe("kvpickFigures", () => {
  it("counts outcomes, names each flow's priority and reads queue waits in simulated seconds", () => {
    const m = kvpickFigures(TEXT, 0.5);
    expect(Object.fromEntries(m.counts)).toEqual({ Dispatched: 10, EvictedTTL: 3 });
    expect(m.flows).toBe("batch → priority 0, interactive → priority 1");
    expect(m.routed).toBe(10);
    expect(m.meanWait).toBeCloseTo((62 / 10) * 0.5);
    expect(m.flowWaits).toBe("batch 5.000, interactive 0.250");
    // Rank 5 of 10: 4 below le=1, the 5th inside (1, 10] → 1 + 9 × 1/4 = 3.25 wall s.
    expect(m.p50).toBe((3.25 * 0.5).toFixed(3));
    // Rank 9: past le=10 (8 at or below it) → only "more than 10 wall s" is known.
    expect(m.p90).toBe("> 5.000");
  });
});
