// The one block size kvpick hashes requests and token-keys events with. `tokenizer.blockSize` when configured
// (it always wins); otherwise learnt from the pods: the first size any pod reports — its
// `vllm:cache_config_info{block_size}` page or a BlockStored (`block_size` field, else token_ids / blocks) —
// is kept for the process's life, since every key in the index was computed with it. A pod that reports
// another size is warned about once; its blocks can never match (token-keys.ts counts them skipped).
import type { Logger } from "../observability/logger.js";

/** Where a pod's block size was read. */
export type BlockSizeSource = "vllm:cache_config_info" | "BlockStored";

/** Pods warned about, at most: pod ids come from topics and discovery, so the memory is bounded. */
const MAX_WARNED_PODS = 10_000;

export class LearntBlockSize {
  /** True when `tokenizer.blockSize` was set: nothing is learnt. */
  readonly configured: boolean;
  readonly #log: Logger;
  #value: number | null;
  readonly #warned = new Set<string>();

  constructor(configured: number | null, logger: Logger) {
    this.configured = configured !== null;
    this.#value = configured;
    this.#log = logger;
  }

  /** Tokens per block, or null while no pod has reported one (requests are then routed on load alone). */
  get value(): number | null {
    return this.#value;
  }

  /**
   * A pod reported `size` tokens per block. The first report sets the size when none is configured;
   * returns whether the pod agrees with the size in use (a pod that differs is warned about once).
   */
  observe(pod: string, size: number, source: BlockSizeSource): boolean {
    if (!Number.isInteger(size) || size < 1 || size > 1024) return false;
    if (this.#value === null) {
      this.#value = size;
      this.#log.info({ pod, blockSize: size, source }, `block size learnt: ${size} from ${source}`);
      return true;
    }
    if (size === this.#value) return true;
    if (!this.#warned.has(pod) && this.#warned.size < MAX_WARNED_PODS) {
      this.#warned.add(pod);
      this.#log.warn(
        { pod, podBlockSize: size, blockSize: this.#value, source, configured: this.configured },
        this.configured
          ? "pod uses a different block size than tokenizer.blockSize: its cache can never match; align vLLM --block-size and tokenizer.blockSize"
          : "pod uses a different block size than the one kvpick learnt from the first pod: its cache can never match; give every pod the same vLLM --block-size (or set tokenizer.blockSize)",
      );
    }
    return false;
  }

  /** The pod left the pool: a later, different size from a new pod at that address is warned about again. */
  forget(pod: string): void {
    this.#warned.delete(pod);
  }
}
