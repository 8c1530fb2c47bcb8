import { describe, expect, it } from "vitest";
import { metricSpecs, parseMetricSpec, parseVllmMetrics, VLLM_METRIC_NAMES } from "./vllm-metrics.js";
import { TWO_ENGINE_PAGE } from "./vllm-pages.fixture.js";

describe("parseVllmMetrics", () => {
  it("sums counts and averages usage over engines, reads cache config and the latest LoRA sample", () => {
    expect(parseVllmMetrics(TWO_ENGINE_PAGE)).toEqual({
      ok: true,
      metrics: {
        waiting: 5,
        running: 5,
        kvCacheUsage: 0.375,
        blockSize: 64,
        numGpuBlocks: 27000,
        prefixCachingHashAlgo: "sha256_cbor_64bit",
        lora: { maxLora: 4, running: ["sql", "chat"], waiting: [] },
        models: ["Qwen/Qwen3-8B"],
      },
    });
  });

  it("falls back to the deprecated vllm:gpu_cache_usage_perc and tolerates missing info metrics", () => {
    const page = [
      "vllm:num_requests_running 1",
      "vllm:num_requests_waiting 0 1700000000000",
      "vllm:gpu_cache_usage_perc 0.9",
    ].join("\n");
    expect(parseVllmMetrics(page)).toEqual({
      ok: true,
      metrics: {
        waiting: 0,
        running: 1,
        kvCacheUsage: 0.9,
        blockSize: null,
        numGpuBlocks: null,
        prefixCachingHashAlgo: null,
        lora: null,
        models: [],
      },
    });
  });

  it("decodes escaped label values", () => {
    const page =
      "vllm:num_requests_running 0\nvllm:num_requests_waiting 0\nvllm:kv_cache_usage_perc 0\n" +
      'vllm:lora_requests_info{max_lora="2",running_lora_adapters="a\\"b,c\\\\n",waiting_lora_adapters="d\\ne"} 5\n';
    const parsed = parseVllmMetrics(page);
    expect(parsed.ok && parsed.metrics.lora).toEqual({
      maxLora: 2,
      running: ['a"b', "c\\n"],
      waiting: ["d\ne"],
    });
  });

  it("rejects pages that are not vLLM metrics or have malformed samples", () => {
    const cases: Array<[string, string]> = [
      ["<html>502 Bad Gateway</html>", "no vllm:num_requests_waiting sample"],
      ["vllm:num_requests_waiting 1\nvllm:num_requests_running 1\n", "no vllm:kv_cache_usage_perc sample"],
      ['vllm:num_requests_waiting{engine="0" 3\n', "malformed labels in vllm:num_requests_waiting"],
      ['vllm:num_requests_waiting{engine="0 3\n', "unterminated label value in vllm:num_requests_waiting"],
      ["vllm:num_requests_waiting abc\n", 'malformed value "abc" in vllm:num_requests_waiting'],
      [
        "vllm:num_requests_waiting NaN\nvllm:num_requests_running 0\nvllm:kv_cache_usage_perc 0\n",
        "vllm:num_requests_waiting is NaN",
      ],
      [
        "vllm:num_requests_waiting -1\nvllm:num_requests_running 0\nvllm:kv_cache_usage_perc 0\n",
        "vllm:num_requests_waiting is -1",
      ],
    ];
    for (const [page, reason] of cases) expect(parseVllmMetrics(page)).toEqual({ ok: false, reason });
  });
});

describe("configurable metric names (GIE's metric flags)", () => {
  it("reads SGLang's gauges and page-size cache info under the sglang chart's names", () => {
    const page = [
      'sglang:num_queue_reqs{model_name="qwen"} 3',
      'sglang:num_running_reqs{model_name="qwen"} 7',
      'sglang:token_usage{model_name="qwen"} 0.42',
      'sglang:cache_config_info{page_size="16",num_pages="9000"} 1',
      "vllm:num_requests_waiting 99",
    ].join("\n");
    const specs = metricSpecs({
      ...VLLM_METRIC_NAMES,
      waiting: '"sglang:num_queue_reqs"',
      running: "sglang:num_running_reqs",
      kvCacheUsage: "sglang:token_usage",
      loraInfo: "",
      cacheInfo: "sglang:cache_config_info",
    });
    expect(parseVllmMetrics(page, specs)).toEqual({
      ok: true,
      metrics: {
        waiting: 3,
        running: 7,
        kvCacheUsage: 0.42,
        blockSize: 16,
        numGpuBlocks: 9000,
        prefixCachingHashAlgo: null,
        lora: null,
        models: ["qwen"],
      },
    });
  });

  it("selects Triton's samples by the spec's labels", () => {
    const page = [
      'nv_trt_llm_request_metrics{model="m",request_type="waiting",version="1"} 4',
      'nv_trt_llm_request_metrics{model="m",request_type="scheduled",version="1"} 6',
      'nv_trt_llm_request_metrics{model="m",request_type="max",version="1"} 512',
      'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction",model="m"} 0.25',
      'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max",model="m"} 4096',
    ].join("\n");
    const specs = metricSpecs({
      waiting: "nv_trt_llm_request_metrics{request_type=waiting}",
      running: "nv_trt_llm_request_metrics{request_type=scheduled}",
      kvCacheUsage: "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=fraction}",
      loraInfo: "",
      cacheInfo: "",
    });
    const parsed = parseVllmMetrics(page, specs);
    expect(parsed.ok && parsed.metrics).toMatchObject({ waiting: 4, running: 6, kvCacheUsage: 0.25 });
    expect(parseVllmMetrics(page.replace('request_type="waiting"', 'request_type="w"'), specs)).toEqual({
      ok: false,
      reason: "no nv_trt_llm_request_metrics sample",
    });
  });

  it("parses GIE's spec syntax and rejects malformed specs", () => {
    expect(parseMetricSpec(' a_b:c{x=1, y = "2"} ')).toEqual({ name: "a_b:c", labels: { x: "1", y: "2" } });
    expect(parseMetricSpec("")).toBeNull();
    for (const bad of ["a{", "a{}", "a{x}", "a{x=}", "a{x=1}b", "1abc", "{x=1}"])
      expect(() => parseMetricSpec(bad)).toThrow(/invalid/);
    expect(() => metricSpecs({ ...VLLM_METRIC_NAMES, running: "" })).toThrow(
      "endpoints.metricNames.running: required",
    );
  });
});
