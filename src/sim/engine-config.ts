// Engine parameters and their calibration. Defaults model the published reference setup
// (shared/reference/epp-contract.md §12): Qwen3-32B, vLLM v0.10, TP2 on 2×H100, block size 64,
// 307,328 KV tokens per pod, peak prefill ≈ 15,900 tokens/s.

export interface EngineConfig {
  /** KV blocks per pod (vLLM num_gpu_blocks). 307,328 tokens / 64 = 4802. */
  numGpuBlocks: number;
  /** Tokens per block (vLLM --block-size). */
  blockSize: number;
  /** Concurrent sequences per step (vLLM --max-num-seqs; v0.10 default on ≥ 70 GiB GPUs for the API server). */
  maxNumSeqs: number;
  /** Token budget of one step (vLLM --max-num-batched-tokens; v0.10 default 8192 on ≥ 70 GiB GPUs). */
  maxNumBatchedTokens: number;
  /** Longest prompt + output (Qwen3-32B max_model_len 40,960). */
  maxModelLen: number;
  /**
   * Compute throughput, tokens/s: every scheduled token (prefill or decode) costs 1/this. 15,900 = the
   * reference's measured peak prefill rate.
   */
  prefillTokensPerSecond: number;
  /**
   * Fixed cost of every forward pass, seconds: reading the weights (64 GB bf16 over 2 GPUs at ~3 TB/s
   * ≈ 11 ms) plus scheduling. Dominates small decode batches (ITL ≈ 12–15 ms at batch 1).
   */
  stepOverheadSeconds: number;
  /**
   * Attention cost per context token of every scheduled sequence, seconds: reading its KV (Qwen3-32B:
   * 64 layers × 8 KV heads × 128 × 2 × 2 B = 256 KiB per token, half per GPU, at ~3.3 TB/s ≈ 40 ns).
   * Makes decode steps slower as the batch and its contexts grow.
   */
  attentionSecondsPerContextToken: number;
  /**
   * vLLM `--scheduling-policy`: "fcfs" (the default: waiting requests in arrival order) or "priority"
   * (waiting requests by the request body's `priority`, lower first, then arrival; when blocks run out the
   * running request with the largest (priority, arrival) is preempted instead of the newest). Absent = "fcfs".
   */
  schedulingPolicy?: "fcfs" | "priority";
  /**
   * vLLM `--long-prefill-token-threshold`: when > 0, no request is scheduled more than this many prompt
   * tokens in one step (its prefill is split into chunks of at most this size). Absent or 0 = off (vLLM's
   * default when `--max-num-partial-prefills` is 1).
   */
  longPrefillTokenThreshold?: number;
}

export const DEFAULT_ENGINE_CONFIG: Readonly<EngineConfig> = Object.freeze({
  numGpuBlocks: 4802,
  blockSize: 64,
  maxNumSeqs: 1024,
  maxNumBatchedTokens: 8192,
  maxModelLen: 40_960,
  prefillTokensPerSecond: 15_900,
  stepOverheadSeconds: 0.012,
  attentionSecondsPerContextToken: 40e-9,
});

/**
 * Duration of one step in simulated seconds. A prompt of U uncached tokens alone costs
 * overhead + U / prefillTokensPerSecond (+ a negligible attention term); a decode batch of B sequences
 * with C context tokens in total costs overhead + B / prefillTokensPerSecond + C × attention.
 */
export function stepSeconds(cfg: EngineConfig, scheduledTokens: number, contextTokens: number): number {
  return (
    cfg.stepOverheadSeconds +
    scheduledTokens / cfg.prefillTokensPerSecond +
    contextTokens * cfg.attentionSecondsPerContextToken
  );
}
