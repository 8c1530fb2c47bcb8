// vLLM KV-event payload (msgspec msgpack `KVEventBatch`) → typed events. Pure: bytes in, values out.
// Accepts every layout vLLM has shipped (shared/reference/vllm-kv-events.md §4): positional arrays of any
// length ≥ tag + block_hashes (missing trailing fields = None, extra trailing fields skipped and counted),
// named-field maps (missing keys = None, unknown keys skipped and counted), outer batch as array or map.
// Unknown event tags are skipped and counted. Anything structurally wrong throws DecodeError: the caller
// drops the whole batch, so bad bytes never reach the index.
//
// One implementation, two drivers: the decode is written as steps (generators) that pause every STEP
// elements of a huge array; `decodeBatch` runs them to the end at once, `decodeBatchSliced`
// (sliced-decode.ts) spreads a ~10 MB million-block message over event-loop turns (issue 16).
import { DecodeError, MsgpackReader } from "./msgpack-reader.js";

export { DecodeError };

export interface BlockStoredEvent {
  type: "BlockStored";
  /** Event values (u64; 32-byte bin values reduced to their last 8 bytes, big-endian). */
  blockHashes: BigUint64Array;
  /** Hash of the block before the first one; null when the blocks start at token 0. */
  parentBlockHash: bigint | null;
  /** Exactly the stored blocks' tokens (block count × block size). */
  tokenIds: Uint32Array;
  blockSize: number | null;
  loraId: number | null;
  /** "GPU", "CPU", …; null in layouts before v0.10.2 (which only had the GPU pool). */
  medium: string | null;
  loraName: string | null;
  /** Per block: a tuple (array) of extra hash keys, or null. */
  extraKeys: unknown[] | null;
  /** KV-cache group of hybrid models; 0 for single-group models. */
  groupIdx: number | null;
  kvCacheSpecKind: string | null;
  kvCacheSpecSlidingWindow: number | null;
}

export interface BlockRemovedEvent {
  type: "BlockRemoved";
  blockHashes: BigUint64Array;
  medium: string | null;
  groupIdx: number | null;
}

export interface AllBlocksClearedEvent {
  type: "AllBlocksCleared";
}

export type KvEvent = BlockStoredEvent | BlockRemovedEvent | AllBlocksClearedEvent;

export interface KvEventBatch {
  /** Publisher wall-clock seconds when the scheduler step ran. */
  ts: number;
  events: KvEvent[];
  /** null in the v0.9.0 layout (no rank) or when nil. */
  dataParallelRank: number | null;
  /** Events with a tag this decoder does not know (skipped). */
  unknownTags: number;
  /** Trailing array fields or map keys this decoder does not know (skipped). */
  extraFields: number;
}

/** Elements of a huge block_hashes / token_ids array decoded between two pauses (~0.25 ms of hashes: a slice
 * of the 1 ms per-turn budget, loop-slicer.ts, overshoots by less than that). */
export const STEP = 4096;

const STORED_FIELDS = 12; // tag + the 11 fields of the newest array layout (spec_kind)
const REMOVED_FIELDS = 4; // tag + block_hashes, medium, group_idx

/** Decodes one `KVEventBatch` payload; throws DecodeError on anything that is not one. */
export function decodeBatch(payload: Uint8Array): KvEventBatch {
  const steps = decodeSteps(payload);
  for (;;) {
    const step = steps.next();
    if (step.done === true) return step.value;
  }
}

/**
 * The decode of `decodeBatch` as steps: pauses (yields) after every STEP elements of a block_hashes or
 * token_ids array and returns the batch, or throws DecodeError, exactly as `decodeBatch` would.
 */
export function* decodeSteps(payload: Uint8Array): Generator<void, KvEventBatch, void> {
  const r = new MsgpackReader(payload);
  const batch: KvEventBatch = { ts: 0, events: [], dataParallelRank: null, unknownTags: 0, extraFields: 0 };
  let sawEvents = false;
  if (r.isArray()) {
    const n = r.arrayLen();
    if (n < 2) throw new DecodeError("batch array shorter than [ts, events]");
    batch.ts = r.float();
    yield* readEvents(r, batch);
    sawEvents = true;
    if (n >= 3) batch.dataParallelRank = r.nil() ? null : r.int();
    for (let i = 3; i < n; i++, batch.extraFields++) r.skip();
  } else if (r.isMap()) {
    const n = r.mapLen();
    for (let i = 0; i < n; i++) {
      const key = readKey(r);
      if (key === "ts") batch.ts = r.float();
      else if (key === "events") {
        yield* readEvents(r, batch);
        sawEvents = true;
      } else if (key === "data_parallel_rank") batch.dataParallelRank = r.nil() ? null : r.int();
      else {
        r.skip();
        batch.extraFields++;
      }
    }
  } else throw new DecodeError("batch is neither an array nor a map");
  if (!sawEvents) throw new DecodeError("batch without events");
  if (r.remaining !== 0) throw new DecodeError("trailing bytes after the batch");
  return batch;
}

function* readEvents(r: MsgpackReader, batch: KvEventBatch): Generator<void, void, void> {
  const n = r.arrayLen();
  for (let i = 0; i < n; i++) {
    const ev = r.isArray()
      ? yield* readArrayEvent(r, batch)
      : r.isMap()
        ? yield* readMapEvent(r, batch)
        : badEvent();
    if (ev === null) batch.unknownTags++;
    else batch.events.push(ev);
  }
}

/** A map key: a string, or anything else skipped (and then matching no known key). */
function readKey(r: MsgpackReader): string {
  if (r.isStr()) return r.str();
  r.skip();
  return "";
}

function badEvent(): never {
  throw new DecodeError("event is neither an array nor a map");
}

function* readArrayEvent(r: MsgpackReader, batch: KvEventBatch): Generator<void, KvEvent | null, void> {
  const n = r.arrayLen();
  if (n < 1) throw new DecodeError("empty event array");
  const tag = r.str();
  let read = 1;
  let ev: KvEvent | null = null;
  if (tag === "BlockStored" || tag === "BlockRemoved") {
    if (n < 2) throw new DecodeError(`${tag} without block_hashes`);
    const f = emptyFields();
    const max = tag === "BlockStored" ? STORED_FIELDS : REMOVED_FIELDS;
    const order = tag === "BlockStored" ? STORED_ORDER : REMOVED_ORDER;
    for (; read < n && read < max; read++) {
      const name = order[read - 1]!;
      if (name === "block_hashes" || name === "token_ids") yield* readArrayField(r, f, name);
      else readField(r, f, name);
    }
    ev = build(tag, f);
  } else if (tag === "AllBlocksCleared") ev = { type: tag };
  for (; read < n; read++) {
    r.skip();
    if (ev !== null) batch.extraFields++;
  }
  return ev;
}

function* readMapEvent(r: MsgpackReader, batch: KvEventBatch): Generator<void, KvEvent | null, void> {
  const n = r.mapLen();
  const f = emptyFields();
  let tag: string | null = null;
  let unknown = 0;
  for (let i = 0; i < n; i++) {
    const key = readKey(r);
    if (key === "type") tag = r.str();
    else if (key === "block_hashes" || key === "token_ids") yield* readArrayField(r, f, key);
    else if (FIELD_NAMES.has(key)) readField(r, f, key as FieldName);
    else {
      r.skip();
      unknown++;
    }
  }
  if (tag === null) throw new DecodeError("map event without type");
  if (tag !== "BlockStored" && tag !== "BlockRemoved" && tag !== "AllBlocksCleared") return null;
  batch.extraFields += unknown;
  if (tag === "AllBlocksCleared") return { type: tag };
  return build(tag, f);
}

type FieldName =
  | "block_hashes"
  | "parent_block_hash"
  | "token_ids"
  | "block_size"
  | "lora_id"
  | "medium"
  | "lora_name"
  | "extra_keys"
  | "group_idx"
  | "kv_cache_spec_kind"
  | "kv_cache_spec_sliding_window";

const STORED_ORDER: readonly FieldName[] = [
  "block_hashes",
  "parent_block_hash",
  "token_ids",
  "block_size",
  "lora_id",
  "medium",
  "lora_name",
  "extra_keys",
  "group_idx",
  "kv_cache_spec_kind",
  "kv_cache_spec_sliding_window",
];
const REMOVED_ORDER: readonly FieldName[] = ["block_hashes", "medium", "group_idx"];
const FIELD_NAMES = new Set<string>(STORED_ORDER);

interface Fields {
  blockHashes: BigUint64Array | null;
  parentBlockHash: bigint | null;
  tokenIds: Uint32Array | null;
  blockSize: number | null;
  loraId: number | null;
  medium: string | null;
  loraName: string | null;
  extraKeys: unknown[] | null;
  groupIdx: number | null;
  kvCacheSpecKind: string | null;
  kvCacheSpecSlidingWindow: number | null;
}

const emptyFields = (): Fields => ({
  blockHashes: null,
  parentBlockHash: null,
  tokenIds: null,
  blockSize: null,
  loraId: null,
  medium: null,
  loraName: null,
  extraKeys: null,
  groupIdx: null,
  kvCacheSpecKind: null,
  kvCacheSpecSlidingWindow: null,
});

const EMPTY_TOKENS = new Uint32Array(0);
const parentWords = new Uint32Array(2);

/** block_hashes or token_ids: the arrays that can hold millions of elements, read STEP at a time. */
function* readArrayField(
  r: MsgpackReader,
  f: Fields,
  name: "block_hashes" | "token_ids",
): Generator<void, void, void> {
  if (r.nil()) return;
  const n = r.arrayLen();
  if (name === "block_hashes") {
    const hashes = new BigUint64Array(n);
    const words = new Uint32Array(hashes.buffer);
    for (let i = 0; i < n; i++) {
      r.hashInto(words, i);
      if (i % STEP === STEP - 1 && i + 1 < n) yield;
    }
    f.blockHashes = hashes;
    return;
  }
  const tokens = new Uint32Array(n);
  for (let from = 0; from < n; from += STEP) {
    if (from > 0) yield;
    r.uint32sInto(tokens, from, Math.min(n, from + STEP));
  }
  f.tokenIds = tokens;
}

/** Every other field: small, read at once. */
function readField(r: MsgpackReader, f: Fields, name: FieldName): void {
  if (r.nil()) return;
  switch (name) {
    case "block_hashes":
    case "token_ids":
      throw new Error(`${name} is read by readArrayField`);
    case "parent_block_hash":
      r.hashInto(parentWords, 0);
      f.parentBlockHash = (BigInt(parentWords[1]!) << 32n) | BigInt(parentWords[0]!);
      return;
    case "block_size":
      f.blockSize = r.int();
      return;
    case "lora_id":
      f.loraId = r.int();
      return;
    case "medium":
      f.medium = r.str();
      return;
    case "lora_name":
      f.loraName = r.str();
      return;
    case "extra_keys": {
      const v = r.any();
      if (!Array.isArray(v)) throw new DecodeError("extra_keys is not a list");
      f.extraKeys = v;
      return;
    }
    case "group_idx":
      f.groupIdx = r.int();
      return;
    case "kv_cache_spec_kind":
      f.kvCacheSpecKind = r.str();
      return;
    case "kv_cache_spec_sliding_window":
      f.kvCacheSpecSlidingWindow = r.int();
      return;
  }
}

/**
 * A BlockStored event as the decoder returns it, fields absent from `given` as an event without them decodes
 * (benchmarks and tests build events with it, so a new field is declared here once).
 */
export function blockStoredEvent(
  given: Partial<Omit<BlockStoredEvent, "type">> & { blockHashes: BigUint64Array },
): BlockStoredEvent {
  const decoded = build("BlockStored", { ...emptyFields(), blockHashes: given.blockHashes });
  return { ...(decoded as BlockStoredEvent), ...given };
}

function build(tag: "BlockStored" | "BlockRemoved", f: Fields): KvEvent {
  if (f.blockHashes === null) throw new DecodeError(`${tag} without block_hashes`);
  if (tag === "BlockRemoved") {
    return { type: tag, blockHashes: f.blockHashes, medium: f.medium, groupIdx: f.groupIdx };
  }
  return {
    type: tag,
    blockHashes: f.blockHashes,
    parentBlockHash: f.parentBlockHash,
    tokenIds: f.tokenIds ?? EMPTY_TOKENS,
    blockSize: f.blockSize,
    loraId: f.loraId,
    medium: f.medium,
    loraName: f.loraName,
    extraKeys: f.extraKeys,
    groupIdx: f.groupIdx,
    kvCacheSpecKind: f.kvCacheSpecKind,
    kvCacheSpecSlidingWindow: f.kvCacheSpecSlidingWindow,
  };
}
