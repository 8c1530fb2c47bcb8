// Startup checks of a validated Config: combinations the schema cannot refuse on its own and that would
// silently give a 0 % hit rate, and the facts about a configuration the composition root and the CLI ask
// (which pool source, whether block hashes are read, whether Kubernetes is in play).
import type { KubeConfig } from "@kubernetes/client-node";
import { LabelSelectorError, parseSelector } from "../endpoints/kube-label-selector.js";
import { metricSpecs } from "../endpoints/vllm-metrics.js";
import { ConfigError } from "../errors.js";
import { type Config, isReproducible } from "./schema.js";

/** Refuses configurations that would silently give a 0 % hit rate. */
export function checkStartupConfig(config: Config): void {
  // Only engine keys need the pods' seed, and only when a scorer reads the index (token keys: README).
  const readsIndex = needsBlockHashes(config);
  if (config.kvEvents.keys === "engine" && readsIndex) {
    if (config.tokenizer.hashSeed === null)
      throw new ConfigError([
        "tokenizer.hashSeed (--hash-seed): required with kvEvents.keys engine: set it to the vLLM pods' " +
          "PYTHONHASHSEED (e.g. 42), or use --kv-events-keys=auto / tokens, which need no seed.",
      ]);
    if (!isReproducible(config.tokenizer.hashAlgo))
      throw new ConfigError([
        `tokenizer.hashAlgo ${config.tokenizer.hashAlgo} hashes a Python pickle, which kvpick cannot reproduce: ` +
          "use --kv-events-keys=auto or tokens with it.",
      ]);
  }
  try {
    metricSpecs(config.endpoints.metricNames);
  } catch (err) {
    throw new ConfigError([(err as Error).message]);
  }
  const sources = poolSources(config);
  if (sources.length > 1)
    throw new ConfigError([`pool: ${sources.join(", ")} are mutually exclusive: configure one pool source`]);
  const { endpointSelector, targetPorts } = config.pool;
  if (endpointSelector !== null) {
    try {
      if (parseSelector(endpointSelector).length === 0) throw new LabelSelectorError("empty selector");
    } catch (err) {
      throw new ConfigError([`pool.endpointSelector (--endpoint-selector): ${(err as Error).message}`]);
    }
    if (targetPorts.length === 0)
      throw new ConfigError([
        "pool.targetPorts (--endpoint-target-ports): required with --endpoint-selector",
      ]);
  }
}

/** Scorers that read the block index (and so the block keys); only they may need the pods' hash seed. */
const BLOCK_HASH_SCORERS = new Set(["precise-prefix-cache-scorer", "ttft-cost-scorer"]);
export function needsBlockHashes(config: Config): boolean {
  return config.scheduling.scorers.some((s) => BLOCK_HASH_SCORERS.has(s.type));
}

/** Kubernetes credentials are at hand: a discovered pool, in-cluster service account, or $KUBECONFIG. */
export function inKubernetes(config: Config, kubeConfig: KubeConfig | undefined): boolean {
  return (
    kubeConfig !== undefined ||
    config.pool.name !== null ||
    config.pool.endpointSelector !== null ||
    process.env.KUBERNETES_SERVICE_HOST !== undefined ||
    process.env.KUBECONFIG !== undefined
  );
}

/** The configured pool sources, by flag name (GIE allows exactly one). */
export function poolSources(config: Config): string[] {
  const out: string[] = [];
  if (config.pool.endpoints.length > 0) out.push("--endpoints");
  if (config.pool.name !== null) out.push("--pool-name");
  if (config.pool.endpointSelector !== null) out.push("--endpoint-selector");
  return out;
}
