// The KV-cache events the simulated engine emits, in vLLM's vocabulary (shared/reference/vllm-kv-events.md
// §4.5). Hashes are exact u64 bigints (never JS numbers); the encoder turns a batch into msgspec bytes.

export interface SimBlockStored {
  type: "BlockStored";
  /** Newly cached full blocks of one request in one step, in chain order. */
  hashes: bigint[];
  /** Hash of the block just before them; null when they start at token 0 (never NONE_HASH). */
  parent: bigint | null;
  /** Exactly those blocks' tokens (hashes.length × blockSize). */
  tokenIds: number[];
  blockSize: number;
  medium: "GPU";
}

export interface SimBlockRemoved {
  type: "BlockRemoved";
  /** vLLM emits one event per evicted block, so always one hash. */
  hashes: bigint[];
  medium: "GPU";
}

export interface SimAllBlocksCleared {
  type: "AllBlocksCleared";
}

export type SimKvEvent = SimBlockStored | SimBlockRemoved | SimAllBlocksCleared;

/** One engine step's events, as vLLM's scheduler publishes them (`KVEventBatch`). */
export interface SimEventBatch {
  /** Epoch seconds of the scheduling step (vLLM: time.time()). */
  ts: number;
  events: SimKvEvent[];
}
