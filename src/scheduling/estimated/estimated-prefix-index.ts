// The estimated prefix cache (GIE's approximate prefix matching, ACK's "estimated" mode): approximate keys of
// the prompt text (approx-prefix-keys.ts) matched against a per-endpoint LRU of what kvpick routed there
// (routed-prefix-lru.ts). Used by the `prefix-cache-scorer` plugin, and by the precise scorers for
// endpoints whose KV events never arrived. Keys are computed once per scheduling cycle.
import { z } from "zod";
import type { CycleState, Endpoint } from "../types.js";
import { ApproxKeyHasher, approxPrefixKeys, CHARS_PER_TOKEN } from "./approx-prefix-keys.js";
import { feedJson, PieceCache } from "./prompt-json-keys.js";
import { RoutedPrefixLru, type RoutedPrefixLruStats } from "./routed-prefix-lru.js";

/** GIE's parameter names and defaults (`prefix-cache-scorer` / `approx-prefix-cache-producer`). */
export const estimatedPrefixParams = z.strictObject({
  /** Take the block size (floor 16 tokens) and each pod's LRU capacity (num_gpu_blocks) from its metrics. */
  autoTune: z.boolean().default(true),
  /** Tokens per key block (× 4 characters) when not auto-tuned. */
  blockSizeTokens: z.number().int().min(1).max(4096).default(16),
  /** GIE's deprecated field: characters per key block; wins over blockSizeTokens and autoTune's block size. */
  blockSize: z.number().int().min(1).max(65536).optional(),
  /** Longest prompt prefix considered, in blocks. */
  maxPrefixBlocksToMatch: z.number().int().min(1).max(4096).default(256),
  /** Keys kept per endpoint when its capacity is not auto-tuned. */
  lruCapacityPerServer: z
    .number()
    .int()
    .min(1)
    .max(2 ** 26)
    .default(31_250),
});
export type EstimatedPrefixParams = z.infer<typeof estimatedPrefixParams>;

/** GIE clamps an auto-tuned block size to at least this many tokens (smaller blocks cost memory, not hits). */
const MIN_AUTO_BLOCK_TOKENS = 16;

export interface EstimatedMatch {
  /** Key blocks in the request (0 when it has no prompt text or is shorter than one block). */
  readonly total: number;
  /** Consecutive key blocks from block 0 recorded for candidates[i]. */
  readonly matched: Uint32Array;
  /** Tokens one key block stands for (characters / 4): matched × this ≈ cached tokens. */
  readonly blockTokens: number;
}

export class EstimatedPrefixIndex {
  readonly #params: EstimatedPrefixParams;
  readonly #lru: RoutedPrefixLru;
  /** Key block size in characters once known (auto-tune locks it at the first pod reporting a block size). */
  #blockChars: number | null;
  /** Long strings' hasher transitions (a shared system prompt is keyed once). */
  readonly #pieces = new PieceCache();

  constructor(params: EstimatedPrefixParams, now?: () => number) {
    this.#params = params;
    this.#lru = new RoutedPrefixLru(now);
    if (params.blockSize !== undefined) this.#blockChars = params.blockSize;
    else if (!params.autoTune) this.#blockChars = params.blockSizeTokens * CHARS_PER_TOKEN;
    else this.#blockChars = null;
  }

  /** The request's keys; computed once per cycle and shared by every user with the same key shape. */
  keys(cycle: CycleState, candidates: readonly Endpoint[]): Float64Array {
    const blockChars = this.#blockCharsFor(candidates);
    const max = this.#params.maxPrefixBlocksToMatch;
    const shape = `${blockChars}/${max}`;
    const memoKey = `estimated-prefix-keys/${shape}`;
    return cycle.memo(memoKey, () => {
      const { targetModel, cacheSalt } = cycle.request;
      const seed = `${targetModel}\u0000${cacheSalt ?? ""}`;
      // The same body seen recently: its keys as computed then (a function of the body, seed and shape).
      const derived = cycle.request.bodyDerived;
      const derivedKey = `${memoKey}/${seed}`;
      const kept = derived?.get(derivedKey);
      if (kept instanceof Float64Array) return kept;
      const keys = this.#keysOf(cycle, seed, blockChars, max);
      derived?.set(derivedKey, keys, keys.byteLength);
      return keys;
    });
  }

  #keysOf(cycle: CycleState, seed: string, blockChars: number, max: number): Float64Array {
    const { promptValue, promptText } = cycle.request;
    if (promptValue !== undefined) {
      // Walk the value, never serialise it whole: only the characters the keys cover are produced.
      const value = promptValue();
      const h = new ApproxKeyHasher(seed, blockChars, max);
      if (typeof value === "string") h.feed(value, 0, Math.min(value.length, max * blockChars));
      else feedJson(h, value, this.#pieces);
      return h.keys();
    }
    if (promptText === undefined) return new Float64Array(0);
    return approxPrefixKeys(promptText(), seed, blockChars, max);
  }

  match(cycle: CycleState, candidates: readonly Endpoint[]): EstimatedMatch {
    const keys = this.keys(cycle, candidates);
    const matched = new Uint32Array(candidates.length);
    if (keys.length > 0)
      for (let i = 0; i < candidates.length; i++) matched[i] = this.#lru.match(candidates[i]!.address, keys);
    return { total: keys.length, matched, blockTokens: this.#blockCharsFor(candidates) / CHARS_PER_TOKEN };
  }

  /** GIE's PreRequest: the request's keys now count as cached on `endpoint`. */
  record(cycle: CycleState, candidates: readonly Endpoint[], endpoint: Endpoint): void {
    const keys = this.keys(cycle, candidates);
    if (keys.length === 0) return;
    const gpuBlocks = endpoint.metrics?.numGpuBlocks ?? null;
    const capacity =
      this.#params.autoTune && gpuBlocks !== null && gpuBlocks > 0
        ? gpuBlocks
        : this.#params.lruCapacityPerServer;
    this.#lru.add(endpoint.address, keys, capacity);
  }

  /** Drops what was learnt about one endpoint. */
  forget(address: string): void {
    this.#lru.forget(address);
  }

  stats(): RoutedPrefixLruStats {
    return this.#lru.stats();
  }

  #blockCharsFor(candidates: readonly Endpoint[]): number {
    if (this.#blockChars !== null) return this.#blockChars;
    for (const e of candidates) {
      const bs = e.metrics?.blockSize ?? null;
      if (bs !== null && bs > 0) {
        this.#blockChars = Math.max(MIN_AUTO_BLOCK_TOKENS, bs) * CHARS_PER_TOKEN;
        return this.#blockChars;
      }
    }
    // No pod has reported its block size yet: GIE's default until one does (then the size is locked).
    return this.#params.blockSizeTokens * CHARS_PER_TOKEN;
  }
}
