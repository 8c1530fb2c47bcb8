// Flow-control metrics under GIE v1.5's names, labels and buckets (pkg/epp/metrics/metrics.go), so the GIE
// dashboard's flow-control panels work unchanged. Label values are bounded: priorities by the objectives;
// fairness ids and model names here (the first MAX_LABELS of each, then "other": the controller recycles
// idle flow slots, so over time it sees more ids than it holds at once).
import { Gauge, Histogram, type Registry } from "prom-client";
import type { FlowControlRecorder, QueueOutcome } from "../flow-control/flow-controller.js";

// GIE's flow_control_request_queue_duration_seconds buckets.
const QUEUE_BUCKETS = [
  0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
// One dispatch evaluation reads every endpoint once: µs to a few ms.
const CYCLE_BUCKETS = [1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2];
const MAX_LABELS = 100;

export class FlowControlMetrics implements FlowControlRecorder {
  readonly #pool: string;
  readonly #queueSize: Gauge<"fairness_id" | "priority" | "inference_pool">;
  readonly #queueBytes: Gauge<"fairness_id" | "priority" | "inference_pool">;
  readonly #queueDuration: Histogram<
    "fairness_id" | "priority" | "outcome" | "inference_pool" | "model_name" | "target_model_name"
  >;
  readonly #cycle: Histogram;
  readonly #saturation: Gauge<"inference_pool">;
  readonly #models = new Set<string>();
  readonly #flows = new Set<string>();

  constructor(registry: Registry, poolName: string) {
    this.#pool = poolName;
    const registers = [registry];
    this.#queueSize = new Gauge({
      name: "inference_extension_flow_control_queue_size",
      help: "Current number of requests waiting in the flow control layer.",
      labelNames: ["fairness_id", "priority", "inference_pool"],
      registers,
    });
    this.#queueBytes = new Gauge({
      name: "inference_extension_flow_control_queue_bytes",
      help: "Current size in bytes of all requests waiting in the flow control layer.",
      labelNames: ["fairness_id", "priority", "inference_pool"],
      registers,
    });
    this.#queueDuration = new Histogram({
      name: "inference_extension_flow_control_request_queue_duration_seconds",
      help: "Total time requests spend in the flow control layer, from admission to a final outcome.",
      labelNames: ["fairness_id", "priority", "outcome", "inference_pool", "model_name", "target_model_name"],
      buckets: QUEUE_BUCKETS,
      registers,
    });
    this.#cycle = new Histogram({
      name: "inference_extension_flow_control_dispatch_cycle_duration_seconds",
      help: "Time of each dispatch evaluation (saturation reading) of the flow control layer.",
      buckets: CYCLE_BUCKETS,
      registers,
    });
    this.#saturation = new Gauge({
      name: "inference_extension_flow_control_pool_saturation",
      help: "Saturation of the pool as flow control reads it (1.0 = saturated).",
      labelNames: ["inference_pool"],
      registers,
    });
  }

  queued(fairnessId: string, priority: number, count: number, bytes: number): void {
    const labels = {
      fairness_id: bounded(this.#flows, fairnessId),
      priority: String(priority),
      inference_pool: this.#pool,
    };
    this.#queueSize.inc(labels, count);
    this.#queueBytes.inc(labels, bytes);
  }

  finished(
    fairnessId: string,
    priority: number,
    model: string,
    outcome: QueueOutcome,
    seconds: number,
  ): void {
    const name = bounded(this.#models, model);
    this.#queueDuration.observe(
      {
        fairness_id: bounded(this.#flows, fairnessId),
        priority: String(priority),
        outcome,
        inference_pool: this.#pool,
        model_name: name,
        target_model_name: name,
      },
      seconds,
    );
  }

  cycle(seconds: number, saturation: number): void {
    this.#cycle.observe(seconds);
    this.#saturation.set({ inference_pool: this.#pool }, saturation);
  }
}

/** `value` while fewer than MAX_LABELS distinct values were seen (remembered in `seen`), else "other". */
function bounded(seen: Set<string>, value: string): string {
  if (seen.has(value)) return value;
  if (seen.size >= MAX_LABELS) return "other";
  seen.add(value);
  return value;
}
