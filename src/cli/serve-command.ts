// `kvpick serve`: flags (GIE names where GIE has them) → config overrides → the app, until SIGTERM/SIGINT.
import { once } from "node:events";
import { createApp } from "../app.js";
import { poolSources } from "../config/startup-checks.js";
import { loadConfigWithNotes } from "../config/load.js";
import type { Config, ConfigInput } from "../config/schema.js";
import { ConfigError } from "../errors.js";
import { createLogger } from "../observability/logger.js";
import { CHART_FLAGS, chartSettings, normaliseChartArgs } from "./chart-flags.js";
import { durationMs } from "./duration.js";
import { type FlagSpec, type FlagValues, FlagError, parseFlags, usage } from "./flags.js";

export const SERVE_FLAGS: Record<string, FlagSpec> = {
  "config-file": { kind: "string", help: "YAML/JSON configuration file" },
  "config-text": { kind: "string", help: "inline YAML/JSON configuration (instead of --config-file)" },
  "grpc-port": { kind: "int", help: "ext_proc gRPC port", default: "9002" },
  "grpc-health-port": { kind: "int", help: "gRPC health port", default: "9003" },
  "metrics-port": { kind: "int", help: "Prometheus /metrics, /healthz, /readyz port", default: "9090" },
  "secure-serving": {
    kind: "bool",
    help: "TLS on the ext_proc port (self-signed unless --cert-path)",
    default: "true",
  },
  "cert-path": { kind: "string", help: "directory holding tls.crt and tls.key" },
  endpoints: {
    kind: "list",
    help: "static pool: ip:port,ip:port (one of --endpoints/--pool-name/--endpoint-selector)",
  },
  "pool-name": { kind: "string", help: "InferencePool to discover the pool from (Kubernetes)" },
  "pool-namespace": {
    kind: "string",
    help: "namespace of the pool and its pods (default $NAMESPACE, else default)",
  },
  "pool-group": {
    kind: "string",
    help: "InferencePool API group: inference.networking.k8s.io (v1) | inference.networking.x-k8s.io (v1alpha2)",
    default: "inference.networking.k8s.io",
  },
  "endpoint-selector": { kind: "string", help: "pods by label selector, no CRDs: k=v,k2=v2" },
  "endpoint-target-ports": {
    kind: "list",
    help: "model-server ports with --endpoint-selector (several = one endpoint per data-parallel rank)",
  },
  "drain-timeout": {
    kind: "string",
    help: "on SIGTERM: NOT_SERVING at once, in-flight streams get this long (e.g. 30s)",
    default: "30s",
  },
  "block-size": {
    kind: "int",
    help: "vLLM --block-size (default: learnt from the pods' vllm:cache_config_info or KV events)",
  },
  "hash-seed": {
    kind: "string",
    help: "the vLLM pods' PYTHONHASHSEED (required only with --kv-events-keys=engine)",
  },
  "hash-algo": {
    kind: "string",
    help: "vLLM --prefix-caching-hash-algo: sha256_cbor_64bit | sha256_cbor | xxhash_cbor | sha256 | xxhash",
    default: "sha256_cbor_64bit",
  },
  "tokenizer-dir": {
    kind: "string",
    help: "tokenizer of models without a mapping: a directory or bundled:<family> (default: bundled Qwen3)",
  },
  "kv-events-endpoint": {
    kind: "string",
    help: "ZeroMQ SUB bind address (bind mode)",
    default: "tcp://*:5557",
  },
  "kv-events-mode": { kind: "string", help: "bind | connect", default: "bind" },
  "kv-events-port": { kind: "int", help: "pods' ZeroMQ PUB port (connect mode)", default: "5557" },
  "kv-events-keys": {
    kind: "string",
    help: "index keys: auto | engine (pods' hashes; needs --hash-seed) | tokens (kvpick's chain over token_ids)",
    default: "auto",
  },
  "redis-url": {
    kind: "string",
    help: "shared block index in Redis, redis://host:port[/db] (replicas share it; warm restarts). Default: off",
  },
  "redis-key-prefix": {
    kind: "string",
    help: "prefix of kvpick's Redis keys (one per pool)",
    default: "kvpick:",
  },
  "kv-events-replay-port": {
    kind: "int",
    help: "pods' vLLM replay_endpoint port (ROUTER; + data-parallel rank) to recover lost KV events; 0 = off",
    default: "0",
  },
  "kv-events-accept-unknown-pods": {
    kind: "bool",
    help: "bind mode: accept KV events from pods outside the pool (default: counted and ignored)",
    default: "false",
  },
  "metrics-bearer-token-file": {
    kind: "string",
    help: "file holding the bearer token /metrics requires (/healthz and /readyz stay open)",
  },
  "max-body-bytes": { kind: "int", help: "larger request bodies get 413", default: "16777216" },
  "refresh-metrics-interval": {
    kind: "string",
    help: "pod /metrics scrape interval (e.g. 50ms)",
    default: "50ms",
  },
  "log-level": { kind: "string", help: "trace | debug | info | warn | error", default: "info" },
  "emit-endpoint-scores": {
    kind: "bool",
    help: "every candidate's scores in response metadata x-gateway-destination-endpoint-scores (debugging)",
    default: "false",
  },
  "grpc-thread": {
    kind: "bool",
    help: "serve ext_proc gRPC on a worker thread of its own (uses a second core)",
    default: "true",
  },
  // GIE / llm-d chart and options.go flags (chart-flags.ts).
  ...CHART_FLAGS,
};

const BOOL_FLAGS = new Set(Object.keys(SERVE_FLAGS).filter((k) => SERVE_FLAGS[k]!.kind === "bool"));

/** Flags → the config keys they override (only the flags given). */
export function overridesFromFlags(v: FlagValues): ConfigInput {
  const pick = <T>(name: string) => v[name] as T | undefined;
  return {
    logLevel: pick<Config["logLevel"]>("log-level"),
    tokenizer: {
      blockSize: pick<number>("block-size"),
      hashSeed: pick<string>("hash-seed"),
      hashAlgo: pick<Config["tokenizer"]["hashAlgo"]>("hash-algo"),
      defaultTokenizerDir: pick<string>("tokenizer-dir"),
    },
    kvEvents: {
      endpoint: pick<string>("kv-events-endpoint"),
      mode: pick<"bind" | "connect">("kv-events-mode"),
      port: pick<number>("kv-events-port"),
      keys: pick<Config["kvEvents"]["keys"]>("kv-events-keys"),
      replayPort: pick<number>("kv-events-replay-port"),
      acceptUnknownPods: pick<boolean>("kv-events-accept-unknown-pods"),
    },
    index: {
      redis: { url: pick<string>("redis-url"), keyPrefix: pick<string>("redis-key-prefix") },
    },
    endpoints: {
      scrapeIntervalMs: durationMs(pick<string>("refresh-metrics-interval"), "refresh-metrics-interval"),
    },
    server: {
      grpcPort: pick<number>("grpc-port"),
      grpcHealthPort: pick<number>("grpc-health-port"),
      metricsPort: pick<number>("metrics-port"),
      secureServing: pick<boolean>("secure-serving"),
      certPath: pick<string>("cert-path"),
      maxBodyBytes: pick<number>("max-body-bytes"),
      drainTimeoutMs: durationMs(pick<string>("drain-timeout"), "drain-timeout"),
      emitEndpointScores: pick<boolean>("emit-endpoint-scores"),
      grpcThread: pick<boolean>("grpc-thread"),
      metricsBearerTokenFile: pick<string>("metrics-bearer-token-file"),
    },
    pool: {
      endpoints: pick<string[]>("endpoints"),
      name: pick<string>("pool-name"),
      namespace: pick<string>("pool-namespace"),
      group: pick<Config["pool"]["group"]>("pool-group"),
      endpointSelector: pick<string>("endpoint-selector"),
      targetPorts: portList(pick<string[]>("endpoint-target-ports"), "endpoint-target-ports"),
    },
  } as ConfigInput;
}

/** The keys of `o` whose value is not undefined (so a spread does not erase another source's value). */
function defined<T extends object>(o: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function portList(items: string[] | undefined, flag: string): number[] | undefined {
  return items?.map((p) => {
    if (!/^\d{1,5}$/.test(p) || Number(p) < 1 || Number(p) > 65535)
      throw new FlagError(`--${flag}: "${p}" is not a port number`);
    return Number(p);
  });
}

export { durationMs };

export function configFromArgs(argv: string[]): { config: Config; help: boolean; notes: string[] } {
  const { values, help } = parseFlags(normaliseChartArgs(argv, BOOL_FLAGS), SERVE_FLAGS);
  if (values["config-file"] !== undefined && values["config-text"] !== undefined) {
    throw new FlagError("--config-file and --config-text are mutually exclusive");
  }
  const chart = chartSettings(values);
  const own = overridesFromFlags(values);
  const tracing = chart.tracing === undefined ? undefined : { enabled: chart.tracing };
  const loaded = loadConfigWithNotes({
    file: values["config-file"] as string | undefined,
    text: values["config-text"] as string | undefined,
    // kvpick's own flags win over the chart's (--log-level over -v).
    overrides: {
      ...own,
      logLevel: own.logLevel ?? chart.overrides.logLevel,
      server: { ...chart.overrides.server, ...defined(own.server) },
      endpoints: { ...chart.overrides.endpoints, ...defined(own.endpoints) },
      ...(tracing === undefined ? {} : { tracing }),
    } as ConfigInput,
  });
  const config = loaded.config;
  const notes = [...chart.notes, ...loaded.notes];
  // GIE: exactly one pool source. (`serve()` itself accepts none: the demo runs an empty pool.)
  if (!help && poolSources(config).length !== 1) {
    throw new FlagError(
      poolSources(config).length === 0
        ? "one of --pool-name, --endpoint-selector or --endpoints is required"
        : `--pool-name, --endpoint-selector and --endpoints are mutually exclusive (got ${poolSources(config).join(", ")})`,
    );
  }
  return { config, help, notes };
}

export async function runServeCommand(argv: string[]): Promise<number> {
  let config: Config;
  let notes: string[];
  try {
    const parsed = configFromArgs(argv);
    if (parsed.help) {
      process.stdout.write(usage("serve", "[flags]", SERVE_FLAGS));
      return 0;
    }
    config = parsed.config;
    notes = parsed.notes;
  } catch (err) {
    if (err instanceof FlagError || err instanceof ConfigError) {
      process.stderr.write(`kvpick serve: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  return serve(config, undefined, notes);
}

/** Runs until SIGTERM / SIGINT; returns the exit code. */
export async function serve(
  config: Config,
  banner?: (ports: object) => void,
  /** Parts of a GIE/llm-d/ACK configuration accepted but ignored (loadConfigWithNotes): one info line. */
  configNotes: readonly string[] = [],
): Promise<number> {
  const logger = createLogger({ level: config.logLevel });
  if (configNotes.length > 0)
    logger.info({ ignored: configNotes }, "configuration: accepted but not used by kvpick");
  let app: ReturnType<typeof createApp>;
  try {
    app = createApp({ config, logger });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`kvpick serve: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const ports = await app.start();
  banner?.(ports);
  const signal = await Promise.race([
    once(process, "SIGTERM").then(() => "SIGTERM"),
    once(process, "SIGINT").then(() => "SIGINT"),
  ]);
  logger.info({ signal }, "kvpick stopping");
  await app.stop(config.server.drainTimeoutMs);
  logger.flush();
  return 0;
}
