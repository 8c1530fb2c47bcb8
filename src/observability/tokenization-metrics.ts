// The tokenizer's metrics, as the recorder tokenization-service.ts declares (TokenizationRecorder): one
// histogram child per place a prompt is tokenized, created once, and the segment cache's counters.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { STAGE_BUCKETS } from "./stage-buckets.js";

type Mode = "cache" | "main" | "worker";

export class TokenizationMetrics {
  readonly #seconds: Record<Mode, ReturnType<Histogram<"mode">["labels"]>>;
  readonly #hits: Counter;
  readonly #misses: Counter;
  readonly #bytes: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    const seconds = new Histogram({
      name: "epp_tokenize_duration_seconds",
      help: "Time to render and tokenize one request, by where it ran (cache, main, worker).",
      labelNames: ["mode"],
      buckets: STAGE_BUCKETS,
      registers,
    });
    this.#seconds = {
      cache: seconds.labels({ mode: "cache" }),
      main: seconds.labels({ mode: "main" }),
      worker: seconds.labels({ mode: "worker" }),
    };
    this.#hits = new Counter({
      name: "epp_token_cache_hits_total",
      help: "Text segments whose token ids came from the segment cache.",
      registers,
    });
    this.#misses = new Counter({
      name: "epp_token_cache_misses_total",
      help: "Text segments that had to be tokenized.",
      registers,
    });
    this.#bytes = new Gauge({
      name: "epp_token_cache_bytes",
      help: "Bytes held by the token-id segment cache.",
      registers,
    });
  }

  tokenized(mode: Mode, seconds: number): void {
    this.#seconds[mode].observe(seconds);
  }

  segmentsLookedUp(hits: number, misses: number, cacheBytes: number): void {
    this.#hits.inc(hits);
    this.#misses.inc(misses);
    this.#bytes.set(cacheBytes);
  }
}
