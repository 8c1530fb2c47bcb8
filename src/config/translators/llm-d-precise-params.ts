// llm-d's precise prefix-cache parameters (`precise-prefix-cache-scorer` v0.3–v0.5, `precise-prefix-cache-
// producer` ≥ v0.9, and ACK's `trackingConfig`) → the kvpick sections that carry the same contract: how a
// prompt is hashed (tokenizer), where KV events arrive (kvEvents) and what a cached tier is worth (index).
// Fields llm-d has but kvpick does not need are accepted and reported as ignored; anything else fails.
import { z } from "zod";
import type { ConfigInput } from "../schema.js";

const tokenProcessorConfig = z.strictObject({
  /** v0.3–v0.5 name: the indexer reproduced vLLM's hashes, so this is vLLM's --block-size. */
  blockSize: z.number().int().min(1).max(1024).optional(),
  /**
   * ≥ v0.9: the chunking of llm-d's *own* key chain (recomputed from token ids), with `hashSeed` seeding that
   * chain. Neither is vLLM's block size or PYTHONHASHSEED, which kvpick needs: reported, not mapped.
   */
  blockSizeTokens: z.number().int().min(1).max(1024).optional(),
  /** The pods' PYTHONHASHSEED; YAML may give it as a number. */
  hashSeed: z.union([z.string(), z.number()]).optional(),
  /** ACK: the model whose tokenizer hashes prompts. */
  model: z.string().optional(),
});

const backendConfigs = z.array(z.strictObject({ name: z.string().min(1), weight: z.number().min(0).max(1) }));

const indexerConfig = z.strictObject({
  tokenProcessorConfig: tokenProcessorConfig.optional(),
  kvCacheBackendConfigs: backendConfigs.optional(),
  // Index backends: redisConfig maps onto kvpick's shared index (index.redis); in-memory ones are kvpick's own.
  kvBlockIndexConfig: z
    .looseObject({
      redisConfig: z
        .strictObject({
          address: z.string().min(1),
          backendType: z.enum(["redis", "valkey"]).optional(),
        })
        .optional(),
    })
    .optional(),
  // Tokenizer pools: kvpick has its own tokenizers.
  tokenizersPoolConfig: z.unknown().optional(),
  kvBlockScorerConfig: z.unknown().optional(),
  prefixStoreConfig: z.unknown().optional(),
});

const kvEventsConfig = z.strictObject({
  zmqEndpoint: z.string().min(1).optional(),
  topicFilter: z.string().optional(),
  discoverPods: z.boolean().optional(),
  podDiscoveryConfig: z
    .strictObject({
      socketPort: z.number().int().min(1).max(65535).optional(),
      podLabelSelector: z.unknown().optional(),
      podNamespace: z.unknown().optional(),
      /** vLLM's replay_endpoint port (llm-d/llm-d-router#1887) → kvEvents.replayPort. */
      replaySocketPort: z.number().int().min(0).max(65535).optional(),
    })
    .optional(),
  engineType: z.literal("vllm", { error: "kvpick reads vLLM KV events only" }).optional(),
  concurrency: z.unknown().optional(),
});

export const llmdPreciseParamsSchema = z.strictObject({
  indexerConfig: indexerConfig.optional(),
  kvEventsConfig: kvEventsConfig.optional(),
  /** Newer llm-d puts it at the top level. */
  tokenProcessorConfig: tokenProcessorConfig.optional(),
  kvCacheBackendConfigs: backendConfigs.optional(),
  /** llm-d's speculative entries: kvpick's `scheduling.speculativeTtlMs` (0 when false). */
  speculativeIndexing: z.boolean().optional(),
  /** Go duration, e.g. "2s" or "500ms". */
  speculativeTTL: z
    .string()
    .regex(/^\d+(\.\d+)?(ms|s|m)$/, { error: "expected a duration such as 2s or 500ms" })
    .optional(),
});

/** "2s" → 2000, "500ms" → 500, "1m" → 60000 (the forms the schema admits). */
export function durationMs(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text);
  if (m === null) throw new RangeError(`not a duration: ${text}`);
  const unit = m[2] === "ms" ? 1 : m[2] === "s" ? 1000 : 60_000;
  return Math.round(Number(m[1]) * unit);
}

export type LlmdPreciseParams = z.infer<typeof llmdPreciseParamsSchema>;

/** The kvpick sections these parameters imply, plus one line per llm-d field kvpick ignores. */
export function preciseParamsToConfig(
  params: LlmdPreciseParams,
  at: string,
): { config: ConfigInput; ignored: string[] } {
  const ignored: string[] = [];
  const config: {
    tokenizer?: { blockSize?: number; hashSeed?: string };
    kvEvents?: {
      mode?: "bind" | "connect";
      endpoint?: string;
      port?: number;
      topicFilter?: string;
      replayPort?: number;
    };
    index?: { mediumWeights?: Record<string, number>; redis?: { url: string } };
    scheduling?: { speculativeTtlMs: number };
  } = {};
  const tp = { ...params.indexerConfig?.tokenProcessorConfig, ...params.tokenProcessorConfig };
  if (tp.blockSizeTokens !== undefined) {
    // llm-d's own chain: mapping its seed onto vLLM's would hash every prompt wrongly and silently.
    ignored.push(
      `${at}tokenProcessorConfig (llm-d's own key chain; set tokenizer.blockSize / tokenizer.hashSeed, ` +
        "i.e. --block-size / --hash-seed, to the vLLM pods' --block-size and PYTHONHASHSEED)",
    );
  } else if (tp.blockSize !== undefined || tp.hashSeed !== undefined) {
    config.tokenizer = {
      ...(tp.blockSize === undefined ? {} : { blockSize: tp.blockSize }),
      ...(tp.hashSeed === undefined ? {} : { hashSeed: String(tp.hashSeed) }),
    };
  }
  if (tp.model !== undefined)
    ignored.push(
      `${at}tokenProcessorConfig.model (tokenizers come from tokenizer.models / defaultTokenizerDir)`,
    );

  const ev = params.kvEventsConfig;
  if (ev !== undefined) {
    const kv: NonNullable<typeof config.kvEvents> = {};
    // A zmqEndpoint means llm-d's centralised mode: kvpick binds, pods connect. Without one, pod discovery
    // (llm-d's default) means kvpick connects to each pod's publisher.
    if (ev.zmqEndpoint !== undefined) Object.assign(kv, { mode: "bind", endpoint: ev.zmqEndpoint });
    else if (ev.discoverPods === true) kv.mode = "connect";
    if (ev.podDiscoveryConfig?.socketPort !== undefined) kv.port = ev.podDiscoveryConfig.socketPort;
    if (ev.podDiscoveryConfig?.replaySocketPort !== undefined)
      kv.replayPort = ev.podDiscoveryConfig.replaySocketPort;
    if (ev.topicFilter !== undefined) kv.topicFilter = ev.topicFilter;
    config.kvEvents = kv;
    for (const k of ["concurrency"] as const)
      if (ev[k] !== undefined) ignored.push(`${at}kvEventsConfig.${k}`);
    for (const k of ["podLabelSelector", "podNamespace"] as const)
      if (ev.podDiscoveryConfig?.[k] !== undefined)
        ignored.push(`${at}kvEventsConfig.podDiscoveryConfig.${k}`);
  }

  const tiers = params.kvCacheBackendConfigs ?? params.indexerConfig?.kvCacheBackendConfigs;
  if (tiers !== undefined) {
    config.index = { mediumWeights: Object.fromEntries(tiers.map((t) => [t.name.toUpperCase(), t.weight])) };
  }
  const blockIndex = params.indexerConfig?.kvBlockIndexConfig;
  if (blockIndex?.redisConfig !== undefined) {
    // llm-d's Redis index: the same role as kvpick's shared index (address with or without the scheme).
    const address = blockIndex.redisConfig.address;
    const url = /^rediss?:\/\//.test(address) ? address : `redis://${address}`;
    config.index = { ...config.index, redis: { url } };
  }
  for (const k of Object.keys(blockIndex ?? {}))
    if (k !== "redisConfig") ignored.push(`${at}indexerConfig.kvBlockIndexConfig.${k}`);
  for (const k of ["tokenizersPoolConfig", "kvBlockScorerConfig", "prefixStoreConfig"] as const)
    if (params.indexerConfig?.[k] !== undefined) ignored.push(`${at}indexerConfig.${k}`);
  // Speculative entries: off when llm-d says so; llm-d's TTL when it is on; kvpick's default when unsaid.
  if (params.speculativeIndexing === false) {
    config.scheduling = { speculativeTtlMs: 0 };
    if (params.speculativeTTL !== undefined)
      ignored.push(`${at}speculativeTTL (speculativeIndexing is false)`);
  } else if (params.speculativeTTL !== undefined) {
    config.scheduling = { speculativeTtlMs: durationMs(params.speculativeTTL) };
  }
  return { config: config as ConfigInput, ignored };
}
