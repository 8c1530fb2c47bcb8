// SimEventBatch → the msgspec msgpack payload vLLM would publish, in any shipped event layout
// (shared/reference/vllm-kv-events.md §4.3): the one encoder of vLLM's event layouts (the simulator and the
// tests' publishers both use it). Default `v0.10.0` (the reference deployment): array structs
// `["BlockStored", block_hashes, parent_block_hash, token_ids, block_size, lora_id]`,
// `["BlockRemoved", block_hashes]`, `["AllBlocksCleared"]`, outer `[ts, events, data_parallel_rank]`.
import type { SimEventBatch, SimKvEvent } from "./kv-event.js";
import { MsgpackWriter } from "./msgpack-writer.js";

export const EVENT_LAYOUTS = [
  "v0.9.0",
  "v0.10.0",
  "v0.10.2",
  "lora_name",
  "extra_keys",
  "group_idx",
  "spec_kind",
  "map",
] as const;
export type EventLayout = (typeof EVENT_LAYOUTS)[number];

export interface EncodeOptions {
  layout?: EventLayout;
  dataParallelRank?: number;
  /** Hashes as 32-byte bin (v0.10.2+ with VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=0): 24 zero bytes + u64 BE. */
  hashesAsBytes?: boolean;
  /** Outer batch as a map `{ts, events, data_parallel_rank}` (one upstream revision declares it so). */
  outerMap?: boolean;
}

const ORDER: readonly EventLayout[] = EVENT_LAYOUTS.slice(0, 7);
const since = (layout: EventLayout, l: EventLayout) =>
  layout === "map" || ORDER.indexOf(layout) >= ORDER.indexOf(l);

export class KvEventEncoder {
  readonly layout: EventLayout;
  readonly #rank: number;
  readonly #asBytes: boolean;
  readonly #outerMap: boolean;
  readonly #w = new MsgpackWriter(4096);

  constructor(options: EncodeOptions = {}) {
    this.layout = options.layout ?? "v0.10.0";
    this.#rank = options.dataParallelRank ?? 0;
    this.#asBytes = options.hashesAsBytes ?? false;
    this.#outerMap = options.outerMap ?? false;
    if (this.#asBytes && !since(this.layout, "v0.10.2"))
      throw new RangeError(`byte hashes need layout v0.10.2 or later, not ${this.layout}`);
  }

  /** The payload frame (a copy: the writer's buffer is reused). */
  encode(batch: SimEventBatch): Uint8Array {
    const w = this.#w;
    w.pos = 0;
    if (this.#outerMap) w.map(3).str("ts");
    else w.array(this.layout === "v0.9.0" ? 2 : 3);
    w.float64(batch.ts);
    if (this.#outerMap) w.str("events");
    w.array(batch.events.length);
    for (const ev of batch.events) this.#event(ev);
    if (this.#outerMap) w.str("data_parallel_rank").uint(this.#rank);
    else if (this.layout !== "v0.9.0") w.uint(this.#rank);
    return Uint8Array.from(w.bytes());
  }

  #hash(h: bigint, asBytes = this.#asBytes): void {
    if (!asBytes) {
      this.#w.value(h); // u64 (a negative one only when a test sends it on purpose)
      return;
    }
    const b = new Uint8Array(32);
    new DataView(b.buffer).setBigUint64(24, h);
    this.#w.bin(b);
  }

  #hashes(hs: readonly bigint[], asBytes?: boolean): void {
    this.#w.array(hs.length);
    for (const h of hs) this.#hash(h, asBytes);
  }

  #event(ev: SimKvEvent): void {
    const w = this.#w;
    const map = this.layout === "map";
    if (ev.type === "AllBlocksCleared") {
      if (map) w.map(1).str("type").str(ev.type);
      else w.array(1).str(ev.type);
      return;
    }
    const asBytes = ev.asBytes ?? this.#asBytes;
    const medium = ev.medium ?? "GPU";
    if (ev.type === "BlockRemoved") {
      if (map) {
        w.map(ev.groupIdx === undefined ? 3 : 4)
          .str("type")
          .str(ev.type)
          .str("block_hashes");
        this.#hashes(ev.hashes, asBytes);
        w.str("medium").str(medium);
        if (ev.groupIdx !== undefined) w.str("group_idx").value(ev.groupIdx);
        return;
      }
      const n = 2 + (since(this.layout, "v0.10.2") ? 1 : 0) + (since(this.layout, "group_idx") ? 1 : 0);
      w.array(n).str(ev.type);
      this.#hashes(ev.hashes, asBytes);
      if (since(this.layout, "v0.10.2")) w.str(medium);
      if (since(this.layout, "group_idx")) w.value(ev.groupIdx ?? 0);
      return;
    }
    // BlockStored. Map structs omit None optionals after lora_name; vLLM ≥ group_idx sends 0 and the kind.
    const parent = ev.parent ?? null;
    const tokenIds = ev.tokenIds ?? [];
    const specKind = ev.specKind === undefined ? "full_attention" : ev.specKind;
    const fields: Array<[string, () => void]> = [
      ["block_hashes", () => this.#hashes(ev.hashes, asBytes)],
      ["parent_block_hash", () => (parent === null ? w.nil() : this.#hash(parent, asBytes))],
      [
        "token_ids",
        () => {
          w.array(tokenIds.length);
          for (const t of tokenIds) w.value(t);
        },
      ],
      ["block_size", () => w.value(ev.blockSize ?? 64)],
      ["lora_id", () => w.nil()],
    ];
    if (since(this.layout, "v0.10.2")) fields.push(["medium", () => w.str(medium)]);
    if (since(this.layout, "lora_name")) fields.push(["lora_name", () => w.value(ev.loraName ?? null)]);
    if (since(this.layout, "extra_keys"))
      fields.push([
        "extra_keys",
        () => {
          // As given (a test may send a list that does not match the blocks), else nil per block.
          if (ev.extraKeys !== undefined) w.value(ev.extraKeys);
          else {
            w.array(ev.hashes.length);
            for (let i = 0; i < ev.hashes.length; i++) w.nil();
          }
        },
      ]);
    if (since(this.layout, "group_idx")) fields.push(["group_idx", () => w.value(ev.groupIdx ?? 0)]);
    if (since(this.layout, "spec_kind")) {
      if (!map || specKind !== null) fields.push(["kv_cache_spec_kind", () => w.value(specKind)]);
      if (!map) fields.push(["kv_cache_spec_sliding_window", () => w.nil()]);
    }
    if (map) {
      w.map(fields.length + 1)
        .str("type")
        .str(ev.type);
      for (const [k, write] of fields) {
        w.str(k);
        write();
      }
      return;
    }
    w.array(fields.length + 1).str(ev.type);
    for (const [, write] of fields) write();
  }
}
