import { describe, expect, it } from "vitest";
import { parseVllmMetrics } from "./vllm-metrics.js";
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
