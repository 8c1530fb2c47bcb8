// The Prometheus page of a vLLM v0.10 OpenAI server, reduced to what routers read, with vLLM's names and
// labels (shared/reference/vllm-kv-events.md §6): gauges for queue and KV usage, prefix-cache counters in
// tokens, cache_config_info with one label per cache setting.
import type { EngineConfig } from "./engine-config.js";
import type { EngineStats } from "./engine.js";

export interface MetricsPageInput {
  model: string;
  config: EngineConfig;
  hashAlgo: string;
  stats: EngineStats;
}

export function metricsPage({ model, config, hashAlgo, stats }: MetricsPageInput): string {
  const l = `engine="0",model_name="${model}"`;
  const cacheInfo = [
    `block_size="${config.blockSize}"`,
    `cache_dtype="auto"`,
    `calculate_kv_scales="False"`,
    `cpu_offload_gb="0"`,
    `enable_prefix_caching="True"`,
    `gpu_memory_utilization="0.9"`,
    `is_attention_free="False"`,
    `num_cpu_blocks="None"`,
    `num_gpu_blocks="${config.numGpuBlocks}"`,
    `num_gpu_blocks_override="None"`,
    `prefix_caching_hash_algo="${hashAlgo}"`,
    `sliding_window="None"`,
    `swap_space="4"`,
    `engine="0"`,
  ].join(",");
  return [
    "# HELP vllm:num_requests_running Number of requests in model execution batches.",
    "# TYPE vllm:num_requests_running gauge",
    `vllm:num_requests_running{${l}} ${stats.running.toFixed(1)}`,
    "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
    "# TYPE vllm:num_requests_waiting gauge",
    `vllm:num_requests_waiting{${l}} ${stats.waiting.toFixed(1)}`,
    "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.",
    "# TYPE vllm:kv_cache_usage_perc gauge",
    `vllm:kv_cache_usage_perc{${l}} ${stats.kvCacheUsage}`,
    "# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.",
    "# TYPE vllm:prefix_cache_queries_total counter",
    `vllm:prefix_cache_queries_total{${l}} ${stats.prefixCacheQueries.toFixed(1)}`,
    "# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.",
    "# TYPE vllm:prefix_cache_hits_total counter",
    `vllm:prefix_cache_hits_total{${l}} ${stats.prefixCacheHits.toFixed(1)}`,
    "# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.",
    "# TYPE vllm:num_preemptions_total counter",
    `vllm:num_preemptions_total{${l}} ${stats.preemptions.toFixed(1)}`,
    "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
    "# TYPE vllm:prompt_tokens_total counter",
    `vllm:prompt_tokens_total{${l}} ${stats.promptTokens.toFixed(1)}`,
    "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
    "# TYPE vllm:generation_tokens_total counter",
    `vllm:generation_tokens_total{${l}} ${stats.generationTokens.toFixed(1)}`,
    "# HELP vllm:request_success_total Count of successfully processed requests.",
    "# TYPE vllm:request_success_total counter",
    `vllm:request_success_total{${l},finished_reason="length"} ${stats.finished.toFixed(1)}`,
    "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig",
    "# TYPE vllm:cache_config_info gauge",
    `vllm:cache_config_info{${cacheInfo}} 1.0`,
    "",
  ].join("\n");
}
