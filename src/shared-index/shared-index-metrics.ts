// What the shared index records (observability/metrics.ts `Metrics` fits): declared here, by the consumer, so
// shared-index never imports observability.
type Outcomes = { inc(labels: { outcome: string }, value?: number): void };

export interface SharedIndexMetrics {
  /** 1 while the Redis connection is ready, else 0. */
  readonly redisUp: { set(value: number): void };
  /** Per-request lookups by outcome (ok | timeout | error | down). */
  readonly redisLookups: Outcomes;
  readonly redisLookupSeconds: { observe(seconds: number): void };
  /** Entries mirrored by outcome (written | dropped | failed); children made once by the mirror. */
  readonly redisWrites: { labels(labels: { outcome: string }): { inc(value?: number): void } };
  /** Pod clears by outcome (done | failed). */
  readonly redisPodClears: Outcomes;
  /** Exposes the mirror's write backlog at scrape time. */
  watchRedisMirror(source: { pendingWrites(): number }): void;
}
