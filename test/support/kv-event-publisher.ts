// A vLLM-format KV-event publisher for tests and benchmarks: encodes batches the way msgspec does in each
// event layout (shared/reference/vllm-kv-events.md §4: array_like structs with all fields, shortest int
// forms, float64 ts, maps omitting None optionals) and sends them on a real ZeroMQ PUB socket as
// [topic, 8-byte big-endian seq, payload], binding or connecting like vLLM's ZmqEventPublisher.
import { encode } from "@msgpack/msgpack";
import { Publisher } from "zeromq";

export type Layout =
  | "v0.9.0"
  | "v0.10.0"
  | "v0.10.2"
  | "lora_name"
  | "extra_keys"
  | "group_idx"
  | "spec_kind"
  | "map";

export interface StoredSpec {
  type: "BlockStored";
  hashes: readonly bigint[];
  parent?: bigint | null;
  tokenIds?: readonly number[];
  blockSize?: number;
  medium?: string;
  groupIdx?: number;
  specKind?: string | null;
  /** lora_name (layouts from lora_name on). */
  loraName?: string | null;
  /** Per block: vLLM's extra tuple (layouts from extra_keys on); default nil for every block. */
  extraKeys?: readonly (readonly unknown[] | null)[];
  /** Send each hash as 32-byte bin (VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=0): 24 zero bytes + the u64 BE. */
  asBytes?: boolean;
}
export interface RemovedSpec {
  type: "BlockRemoved";
  hashes: readonly bigint[];
  medium?: string;
  groupIdx?: number;
  asBytes?: boolean;
}
export interface ClearedSpec {
  type: "AllBlocksCleared";
}
export type EventSpec = StoredSpec | RemovedSpec | ClearedSpec;

const ORDER: Layout[] = ["v0.9.0", "v0.10.0", "v0.10.2", "lora_name", "extra_keys", "group_idx", "spec_kind"];
const since = (layout: Layout, l: Layout) => layout === "map" || ORDER.indexOf(layout) >= ORDER.indexOf(l);

/**
 * msgspec writes ints in their shortest form. Numbers up to u32 get that from @msgpack/msgpack; anything
 * wider stays a bigint (→ uint 64), since with useBigInt64 the encoder writes numbers above 2^32 as float64.
 */
function wireHash(h: bigint, asBytes: boolean | undefined): number | bigint | Uint8Array {
  if (asBytes) {
    const b = new Uint8Array(32);
    new DataView(b.buffer).setBigUint64(24, h);
    return b;
  }
  return h <= 0xffffffffn ? Number(h) : h;
}

/** One event in `layout`, as the plain value msgspec would serialise. */
export function eventValue(ev: EventSpec, layout: Layout): unknown {
  if (ev.type === "AllBlocksCleared") return layout === "map" ? { type: ev.type } : [ev.type];
  const hashes = ev.hashes.map((h) => wireHash(h, ev.asBytes));
  const medium = ev.medium ?? "GPU";
  if (ev.type === "BlockRemoved") {
    if (layout === "map") {
      const m: Record<string, unknown> = { type: ev.type, block_hashes: hashes, medium };
      if (ev.groupIdx !== undefined) m.group_idx = ev.groupIdx;
      return m;
    }
    const a: unknown[] = [ev.type, hashes];
    if (since(layout, "v0.10.2")) a.push(medium);
    if (since(layout, "group_idx")) a.push(ev.groupIdx ?? 0);
    return a;
  }
  const parent = ev.parent === undefined || ev.parent === null ? null : wireHash(ev.parent, ev.asBytes);
  const fields: [string, unknown][] = [
    ["block_hashes", hashes],
    ["parent_block_hash", parent],
    ["token_ids", ev.tokenIds ?? []],
    ["block_size", ev.blockSize ?? 64],
    ["lora_id", null],
  ];
  if (since(layout, "v0.10.2")) fields.push(["medium", medium]);
  if (since(layout, "lora_name")) fields.push(["lora_name", ev.loraName ?? null]);
  if (since(layout, "extra_keys")) fields.push(["extra_keys", ev.extraKeys ?? ev.hashes.map(() => null)]);
  if (since(layout, "group_idx")) fields.push(["group_idx", ev.groupIdx ?? 0]);
  if (since(layout, "spec_kind")) {
    fields.push(["kv_cache_spec_kind", ev.specKind === undefined ? "full_attention" : ev.specKind]);
    fields.push(["kv_cache_spec_sliding_window", null]);
  }
  if (layout !== "map") return [ev.type, ...fields.map(([, v]) => v)];
  const m: Record<string, unknown> = { type: ev.type };
  // Map structs omit optional fields equal to their default (None) after lora_name.
  for (const [k, v] of fields)
    if (v !== null || ["parent_block_hash", "lora_id", "lora_name"].includes(k)) m[k] = v;
  return m;
}

export interface BatchOptions {
  layout?: Layout;
  ts?: number;
  /** Data-parallel rank; omitted from the batch in the v0.9.0 layout. */
  rank?: number;
  /** Outer batch as a map (one upstream revision declares it so). */
  outerMap?: boolean;
}

export function encodeBatch(events: readonly EventSpec[], options: BatchOptions = {}): Uint8Array {
  const layout = options.layout ?? "v0.10.0";
  const ts = options.ts ?? 1753315200.25;
  const evs = events.map((e) => eventValue(e, layout));
  if (options.outerMap)
    return encode({ ts, events: evs, data_parallel_rank: options.rank ?? 0 }, { useBigInt64: true });
  const batch = layout === "v0.9.0" ? [ts, evs] : [ts, evs, options.rank ?? 0];
  return encode(batch, { useBigInt64: true });
}

export function seqFrame(seq: bigint | number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(seq));
  return b;
}

export interface PublisherOptions extends BatchOptions {
  topic: string;
  /** First sequence number (vLLM: 0; llm-d-inference-sim: 1). */
  firstSeq?: bigint;
}

export class KvEventPublisher {
  readonly socket = new Publisher({ linger: 0, sendHighWaterMark: 100_000 });
  readonly options: PublisherOptions;
  /** The next sequence number to send. */
  seq: bigint;

  constructor(options: PublisherOptions) {
    this.options = options;
    this.seq = options.firstSeq ?? 0n;
  }

  /** Binds like vLLM with endpoint `tcp://*:5557` (connect-mode subscribers dial it); returns the address. */
  async bind(endpoint = "tcp://127.0.0.1:*"): Promise<string> {
    await this.socket.bind(endpoint);
    return this.socket.lastEndpoint!;
  }

  /** Dials a bind-mode subscriber, like vLLM with endpoint `tcp://<epp>:5557`. */
  connect(endpoint: string): void {
    this.socket.connect(endpoint);
  }

  /** Sends one batch with the next seq; returns the seq used. */
  async publish(events: readonly EventSpec[], options: BatchOptions = {}): Promise<bigint> {
    const seq = this.seq++;
    await this.sendRaw([
      this.options.topic,
      seqFrame(seq),
      encodeBatch(events, { ...this.options, ...options }),
    ]);
    return seq;
  }

  async sendRaw(frames: (string | Uint8Array)[]): Promise<void> {
    await this.socket.send(frames);
  }

  /**
   * Defeats ZeroMQ's slow joiner (messages sent before the subscription reaches the PUB are dropped):
   * sends empty batches every 10 ms until `ready()` is true or `timeoutMs` passes. A subscriber takes the
   * first seq it sees as the start, so these warm-up batches cause no gap.
   */
  async publishUntil(ready: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      if (Date.now() > deadline) throw new Error(`subscriber not receiving after ${timeoutMs} ms`);
      await this.publish([]);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  close(): void {
    this.socket.close();
  }
}
