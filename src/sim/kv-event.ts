// The KV-cache events kvpick's simulator and test publishers emit, in vLLM's vocabulary
// (shared/reference/vllm-kv-events.md §4.5): the one declaration of what an encoder writes (kv-events/decode.ts
// declares what kvpick reads). Hashes are exact u64 bigints (never JS numbers). Optional fields take vLLM's
// defaults; the simulated engine sets the fields vLLM always fills, tests set the others.

export interface SimBlockStored {
  type: "BlockStored";
  /** Newly cached full blocks of one request in one step, in chain order. */
  hashes: readonly bigint[];
  /** Hash of the block just before them; null/absent when they start at token 0 (never NONE_HASH). */
  parent?: bigint | null;
  /** Exactly those blocks' tokens (hashes.length × blockSize); default none. */
  tokenIds?: readonly number[];
  /** Default 64. */
  blockSize?: number;
  /** Default "GPU" (layouts from v0.10.2 on). */
  medium?: string;
  /** lora_name (layouts from lora_name on); default nil. */
  loraName?: string | null;
  /** Per block: vLLM's extra tuple (layouts from extra_keys on); default nil for every block. */
  extraKeys?: readonly (readonly unknown[] | null)[];
  /** KV-cache group (layouts from group_idx on); default 0. */
  groupIdx?: number;
  /** kv_cache_spec_kind (layouts from spec_kind on); default "full_attention", null = omitted in maps. */
  specKind?: string | null;
  /** Send each hash as 32-byte bin (VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=0): 24 zero bytes + the u64 BE. */
  asBytes?: boolean;
}

export interface SimBlockRemoved {
  type: "BlockRemoved";
  /** vLLM emits one event per evicted block; tests send several. */
  hashes: readonly bigint[];
  medium?: string;
  groupIdx?: number;
  asBytes?: boolean;
}

export interface SimAllBlocksCleared {
  type: "AllBlocksCleared";
}

export type SimKvEvent = SimBlockStored | SimBlockRemoved | SimAllBlocksCleared;

/** One engine step's events, as vLLM's scheduler publishes them (`KVEventBatch`). */
export interface SimEventBatch {
  /** Epoch seconds of the scheduling step (vLLM: time.time()). */
  ts: number;
  events: readonly SimKvEvent[];
}
