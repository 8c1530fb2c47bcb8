// The flags the upstream Helm charts pass their EPP (GIE v1.5 `config/charts/epplib/templates/_deployment.yaml`,
// llm-d-router `config/charts/routerlib`) and the rest of GIE's `pkg/epp/server/options.go` + zap logging
// flags, so kvpick's image runs under those charts with only the image swapped. Mapped onto kvpick's config
// where kvpick has the concept (log level, model-server metric names / path / scheme, staleness, /metrics
// auth); the rest is accepted and named once at info ("accepted, no effect").
//
// Chart quirks handled here (normaliseChartArgs), before the generic parser sees the arguments:
// - `-v 1`, `-v=1`, `-v1` (pflag's shorthand) as well as `--v 1` / `--v=1`;
// - values the chart writes with literal quotes (`--total-queued-requests-metric="sglang:num_queue_reqs"`:
//   YAML keeps the quotes, Go's flag parser never strips them; GIE's metric parser tolerates them);
// - v1.5 renders `inferenceExtension.flags` as two arguments (`--secure-serving`, `"false"`), so a boolean
//   flag followed by a literal true/false takes it as its value (pflag would leave it as a stray positional and
//   keep the flag true, which is never what the values file meant).
import type { ConfigInput } from "../config/schema.js";
import { parseMetricSpec } from "../endpoints/vllm-metrics.js";
import { durationMs } from "./duration.js";
import { type FlagSpec, type FlagValues, FlagError } from "./flags.js";

export const CHART_FLAGS: Record<string, FlagSpec> = {
  v: { kind: "int", help: "GIE log verbosity (-v): ≤ 3 info, 4 debug, ≥ 5 trace" },
  "zap-log-level": {
    kind: "string",
    help: "zap level: debug | info | error | panic, or a verbosity integer (wins over -v)",
  },
  "zap-encoder": { kind: "string", help: "json | console (kvpick always logs JSON lines)" },
  "zap-devel": { kind: "bool", help: "accepted, no effect" },
  "zap-stacktrace-level": { kind: "string", help: "accepted, no effect" },
  "zap-time-encoding": { kind: "string", help: "accepted, no effect (timestamps are ISO 8601)" },
  "metrics-endpoint-auth": {
    kind: "bool",
    help: "in Kubernetes, /metrics needs a service-account token allowed to get /metrics (TokenReview + SubjectAccessReview)",
    default: "true",
  },
  tracing: { kind: "bool", help: "OpenTelemetry traces (OTEL_* environment)", default: "false" },
  "ha-enable-leader-election": {
    kind: "bool",
    help: "accepted: kvpick replicas are active-active (each one Ready), no leader is elected",
  },
  "model-server-metrics-path": { kind: "string", help: "pods' metrics path", default: "/metrics" },
  "model-server-metrics-scheme": { kind: "string", help: "http | https", default: "http" },
  "model-server-metrics-https-insecure-skip-verify": {
    kind: "bool",
    help: "https: skip the pods' certificate check",
    default: "true",
  },
  "model-server-metrics-port": {
    kind: "int",
    help: "accepted, no effect (pods are scraped on their target port)",
  },
  "total-queued-requests-metric": {
    kind: "string",
    help: "waiting-requests gauge",
    default: "vllm:num_requests_waiting",
  },
  "total-running-requests-metric": {
    kind: "string",
    help: "running-requests gauge",
    default: "vllm:num_requests_running",
  },
  "kv-cache-usage-percentage-metric": {
    kind: "string",
    help: "KV-cache usage (0..1)",
    default: "vllm:kv_cache_usage_perc",
  },
  "lora-info-metric": {
    kind: "string",
    help: 'LoRA info metric ("" = none)',
    default: "vllm:lora_requests_info",
  },
  "cache-info-metric": {
    kind: "string",
    help: 'cache config info metric ("" = none)',
    default: "vllm:cache_config_info",
  },
  "metrics-staleness-threshold": {
    kind: "string",
    help: "a pod reading older than this counts as stale",
    default: "2s",
  },
  "refresh-prometheus-metrics-interval": {
    kind: "string",
    help: "accepted, no effect (gauges are read at scrape)",
  },
  "health-checking": { kind: "bool", help: "accepted, no effect (gRPC health is always on the health port)" },
  "enable-pprof": { kind: "bool", help: "accepted, no effect (no pprof in Node)" },
  "enable-cert-reload": { kind: "bool", help: "accepted, no effect" },
  "disable-endpoint-subset-filter": {
    kind: "bool",
    help: "accepted, no effect (kvpick always honours the proxy's subset hint)",
  },
  // llm-d-router's additions.
  "grpc-max-recv-msg-size": { kind: "int", help: "accepted, no effect" },
  "grpc-max-send-msg-size": { kind: "int", help: "accepted, no effect" },
  "tls-min-version": { kind: "string", help: "accepted, no effect" },
  "tls-cipher-suites": { kind: "string", help: "accepted, no effect" },
  "metrics-client-ca-file": { kind: "string", help: "accepted, no effect" },
  "metrics-cert-dir": { kind: "string", help: "accepted, no effect" },
  "enable-grpc-stream-metrics": { kind: "bool", help: "accepted, no effect" },
  "allow-experimental-plugins": { kind: "bool", help: "accepted, no effect" },
};

/** Flags accepted only for compatibility: given, they are listed once at info. */
const NO_EFFECT = Object.keys(CHART_FLAGS).filter((k) => CHART_FLAGS[k]!.help.startsWith("accepted"));

const BOOL_WORDS = new Set(["true", "false"]);

/**
 * Rewrites chart-rendered arguments into the `--name=value` forms parseFlags reads (see the header).
 * `boolFlags` names every boolean flag of the command.
 */
export function normaliseChartArgs(argv: readonly string[], boolFlags: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i]!;
    if (arg === "--") {
      out.push(...argv.slice(i));
      break;
    }
    const short = /^-v(?:=?(.*))$/.exec(arg);
    if (short !== null) arg = short[1] === "" ? "--v" : `--v=${short[1]}`;
    if (!arg.startsWith("--")) {
      out.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    if (eq !== -1) {
      const value = arg.slice(eq + 1);
      out.push(
        value.length >= 2 && value.startsWith('"') && value.endsWith('"')
          ? `${arg.slice(0, eq + 1)}${value.slice(1, -1)}`
          : arg,
      );
      continue;
    }
    const next = argv[i + 1];
    if (boolFlags.has(arg.slice(2)) && next !== undefined && BOOL_WORDS.has(next)) {
      out.push(`${arg}=${next}`);
      i++;
      continue;
    }
    out.push(arg);
  }
  return out;
}

/** zap's --zap-log-level names and GIE's verbosity → a pino level. */
function logLevelOf(v: FlagValues): "info" | "debug" | "trace" | "error" | "fatal" | undefined {
  const zap = v["zap-log-level"] as string | undefined;
  if (zap !== undefined) {
    if (/^\d+$/.test(zap)) return verbosityLevel(Number(zap));
    const named = { debug: "debug", info: "info", error: "error", panic: "fatal" } as const;
    const level = named[zap as keyof typeof named];
    if (level === undefined)
      throw new FlagError(`--zap-log-level: expected debug, info, error, panic or an integer, got "${zap}"`);
    return level;
  }
  const verbosity = v.v as number | undefined;
  return verbosity === undefined ? undefined : verbosityLevel(verbosity);
}

/** GIE: DEFAULT 2 and VERBOSE 3 log at info, DEBUG 4 at debug, TRACE 5 at trace. */
const verbosityLevel = (n: number) => (n >= 5 ? "trace" : n === 4 ? "debug" : "info");

function metricSpec(v: FlagValues, flag: string): string | undefined {
  const raw = v[flag] as string | undefined;
  if (raw === undefined) return undefined;
  try {
    parseMetricSpec(raw);
  } catch (err) {
    throw new FlagError(`--${flag}: ${(err as Error).message}`);
  }
  return raw;
}

export interface ChartSettings {
  /** To be merged into serve's flag overrides. */
  overrides: ConfigInput;
  /** --tracing as given (the tracing module reads it), undefined when absent. */
  tracing: boolean | undefined;
  /** One line per accepted-but-ignored flag, for the startup info log. */
  notes: string[];
}

/** The chart flags among `v` → config overrides, the tracing switch, and notes. Throws FlagError. */
export function chartSettings(v: FlagValues): ChartSettings {
  const notes = NO_EFFECT.filter((k) => v[k] !== undefined).map((k) => `--${k}: ${CHART_FLAGS[k]!.help}`);
  const encoder = v["zap-encoder"] as string | undefined;
  if (encoder !== undefined && encoder !== "json" && encoder !== "console")
    throw new FlagError(`--zap-encoder: expected json or console, got "${encoder}"`);
  if (encoder === "console")
    notes.push("--zap-encoder console: accepted, no effect (kvpick logs JSON lines)");
  const scheme = v["model-server-metrics-scheme"] as string | undefined;
  if (scheme !== undefined && scheme !== "http" && scheme !== "https")
    throw new FlagError(`--model-server-metrics-scheme: expected http or https, got "${scheme}"`);
  const path = v["model-server-metrics-path"] as string | undefined;
  if (path !== undefined && !path.startsWith("/"))
    throw new FlagError(`--model-server-metrics-path: expected a path starting with /, got "${path}"`);
  return {
    overrides: {
      logLevel: logLevelOf(v),
      server: { metricsEndpointAuth: v["metrics-endpoint-auth"] as boolean | undefined },
      endpoints: {
        metricsPath: path,
        metricsScheme: scheme as "http" | "https" | undefined,
        metricsInsecureSkipVerify: v["model-server-metrics-https-insecure-skip-verify"] as
          | boolean
          | undefined,
        staleAfterMs: durationMs(
          v["metrics-staleness-threshold"] as string | undefined,
          "metrics-staleness-threshold",
        ),
        metricNames: {
          waiting: metricSpec(v, "total-queued-requests-metric"),
          running: metricSpec(v, "total-running-requests-metric"),
          kvCacheUsage: metricSpec(v, "kv-cache-usage-percentage-metric"),
          loraInfo: metricSpec(v, "lora-info-metric"),
          cacheInfo: metricSpec(v, "cache-info-metric"),
        },
      },
    },
    tracing: v.tracing as boolean | undefined,
    notes,
  };
}
