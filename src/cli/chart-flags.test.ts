// The GIE / llm-d chart flags of `kvpick serve`, in the forms the charts render them.
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../test/support/golden.js";
import { checkStartupConfig } from "../config/startup-checks.js";
import { normaliseChartArgs } from "./chart-flags.js";
import { FlagError } from "./flags.js";
import { configFromArgs } from "./serve-command.js";

const POOL = ["--endpoints=10.0.0.1:8000", "--hash-seed=42"];

describe("GIE chart flags", () => {
  it("accept the v1.5 chart's rendered args, both --flag value and --flag=value", () => {
    const { config, notes } = configFromArgs([
      ...POOL,
      "--zap-encoder",
      "json",
      "--ha-enable-leader-election",
      "--v",
      "1",
      "--tracing=false",
      "--metrics-endpoint-auth=false",
      "--enable-pprof=true",
    ]);
    expect(config.logLevel).toBe("info");
    expect(config.server.metricsEndpointAuth).toBe(false);
    expect(notes).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^--ha-enable-leader-election: accepted/),
        expect.stringMatching(/^--enable-pprof: accepted, no effect/),
      ]),
    );
  });

  it("map verbosity and zap levels onto pino levels; kvpick's --log-level wins", () => {
    const cases: Array<[string[], string]> = [
      [["--v=2"], "info"],
      [["-v", "3"], "info"],
      [["-v4"], "debug"],
      [["-v=5"], "trace"],
      [["--zap-log-level=error"], "error"],
      [["--zap-log-level", "panic"], "fatal"],
      [["--zap-log-level=4", "--v=1"], "debug"],
      [["--v=5", "--log-level=warn"], "warn"],
    ];
    for (const [args, level] of cases)
      expect([args, configFromArgs([...POOL, ...args]).config.logLevel]).toEqual([args, level]);
  });

  it("read the model-server metric flags as the sglang, triton and trtllm-serve charts write them", () => {
    const sglang = configFromArgs([
      ...POOL,
      '--total-queued-requests-metric="sglang:num_queue_reqs"',
      '--total-running-requests-metric="sglang:num_running_reqs"',
      '--kv-cache-usage-percentage-metric="sglang:token_usage"',
      '--cache-info-metric="sglang:cache_config_info"',
    ]).config;
    expect(sglang.endpoints.metricNames).toEqual({
      waiting: "sglang:num_queue_reqs",
      running: "sglang:num_running_reqs",
      kvCacheUsage: "sglang:token_usage",
      loraInfo: "vllm:lora_requests_info",
      cacheInfo: "sglang:cache_config_info",
    });
    const triton = configFromArgs([
      ...POOL,
      "--total-queued-requests-metric",
      "nv_trt_llm_request_metrics{request_type=waiting}",
      "--lora-info-metric",
      "",
      '--model-server-metrics-path="/prometheus/metrics"',
      "--model-server-metrics-scheme",
      "https",
      "--model-server-metrics-https-insecure-skip-verify=false",
      "--metrics-staleness-threshold=500ms",
    ]).config;
    expect(triton.endpoints).toMatchObject({
      metricsPath: "/prometheus/metrics",
      metricsScheme: "https",
      metricsInsecureSkipVerify: false,
      staleAfterMs: 500,
      metricNames: { waiting: "nv_trt_llm_request_metrics{request_type=waiting}", loraInfo: "" },
    });
  });

  it("take a literal true/false after a boolean flag (v1.5 renders `flags:` as two arguments)", () => {
    const { config } = configFromArgs([
      ...POOL,
      "--secure-serving",
      "false",
      "--metrics-endpoint-auth",
      "false",
    ]);
    expect(config.server).toMatchObject({ secureServing: false, metricsEndpointAuth: false });
    expect(normaliseChartArgs(["--tracing", "--pool-name", "x"], new Set(["tracing"]))).toEqual([
      "--tracing",
      "--pool-name",
      "x",
    ]);
  });

  it("fail on unknown flags and bad values with the flag's name", () => {
    const cases: Array<[string[], RegExp]> = [
      [["--zap-encoder=yaml"], /--zap-encoder: expected json or console/],
      [["--no-such-flag"], /unknown flag --no-such-flag/],
      [["--total-queued-requests-metric=foo{bar}"], /--total-queued-requests-metric: invalid label pair/],
      [["--model-server-metrics-scheme=ftp"], /expected http or https/],
      [["--zap-log-level=loud"], /--zap-log-level: expected debug, info, error, panic/],
      [["--v=x"], /--v: expected an integer/],
    ];
    for (const [args, message] of cases) {
      expect(() => configFromArgs([...POOL, ...args])).toThrow(FlagError);
      expect(() => configFromArgs([...POOL, ...args])).toThrow(message);
    }
  });
});

describe("hash seed with the chart's default config", () => {
  it("is not needed without a precise scorer, nor with token keys; engine keys with a precise scorer need it", () => {
    const chart = configFromArgs([
      "--endpoints=10.0.0.1:8000",
      "--config-file",
      `${repoRoot}/test/fixtures/chart/default-plugins.yaml`,
    ]).config;
    expect(chart.tokenizer.hashSeed).toBeNull();
    expect(() => checkStartupConfig(chart)).not.toThrow();
    const own = configFromArgs(["--endpoints=10.0.0.1:8000"]).config;
    expect(() => checkStartupConfig(own)).not.toThrow(); // kvEvents.keys auto: token keys need no seed
    const engine = configFromArgs(["--endpoints=10.0.0.1:8000", "--kv-events-keys=engine"]).config;
    expect(() => checkStartupConfig(engine)).toThrow(
      /tokenizer.hashSeed \(--hash-seed\): required with kvEvents.keys engine/,
    );
  });
});
