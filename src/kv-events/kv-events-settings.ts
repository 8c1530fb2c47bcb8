// The KV-event settings this module reads (config/schema.ts `Config["kvEvents"]` fits): declared here, by the
// consumer, so kv-events never imports the config schema. Meanings and defaults: the schema and the README.
export interface KvEventsSettings {
  readonly mode: "bind" | "connect";
  /** Bind address in bind mode. */
  readonly endpoint: string;
  /** Pod port in connect mode (data-parallel rank N publishes on port + N). */
  readonly port: number;
  /** ZeroMQ prefix subscription. */
  readonly topicFilter: string;
  /** The pods' vLLM replay port; null or 0 = replay off. */
  readonly replayPort: number | null;
  readonly replayTimeoutMs: number;
  readonly replayCooldownMs: number;
  readonly maxConcurrentReplays: number;
  readonly maxHeldBatches: number;
  readonly healAfterMs: number;
  /** Bind mode: accept events from pods outside the current pool. */
  readonly acceptUnknownPods: boolean;
}
