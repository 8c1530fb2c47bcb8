// Node process metrics (CPU, resident memory, heap, event-loop lag, GC) under prom-client's standard names,
// which the usual Node dashboards read.
import { collectDefaultMetrics, type Registry } from "prom-client";

export function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
}
