// The sizes of kvpick's prefix indexes, read from their `stats()` at scrape time, so the indexes never pay
// for metrics on their hot paths (llm-d's instrumented index: metrics around the index, not inside it).
import { Counter, Gauge, type Registry } from "prom-client";

/** The block index's sizes (kv-index/block-index.ts provides them). */
export interface IndexStatsSource {
  stats(): { entries: number; blocks: number; pods: number; evictions: number };
}

/** `epp_kv_index_*`: the KV-event block index. */
export function watchIndex(registry: Registry, index: IndexStatsSource): void {
  const gauge = (name: string, help: string, key: keyof ReturnType<IndexStatsSource["stats"]>) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(index.stats()[key]);
      },
    });
  gauge("epp_kv_index_entries", "Block-pod-medium entries in the index.", "entries");
  gauge("epp_kv_index_blocks", "Distinct block hashes in the index.", "blocks");
  gauge("epp_kv_index_pods", "Pods with at least one indexed block.", "pods");
  // A running total the index keeps: a counter holding its value (rate() works, resets stay detectable).
  new Counter({
    name: "epp_kv_index_evictions_total",
    help: "Entries evicted because the index reached index.maxEntries.",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(index.stats().evictions);
    },
  });
}

/** The estimated prefix index used for endpoints without KV events. */
export function watchEstimatedFallback(
  registry: Registry,
  source: { stats(): { pods: number; entries: number } },
): void {
  new Gauge({
    name: "epp_estimated_prefix_entries",
    help: "Approximate prefix keys remembered for endpoints without KV events (estimated fallback).",
    registers: [registry],
    collect() {
      this.set(source.stats().entries);
    },
  });
}
