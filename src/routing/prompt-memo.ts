// Recent request bodies with what routing derived from them: the parse and the block chain. A body that
// arrives again byte for byte (a client retry, an n > 1 fan-out, a gateway replay, a benchmark) skips parse,
// render, tokenize and hash — on an 8k-token chat that is most of kvpick's own CPU per request.
// Exact for any body: the lookup key is a cheap sampled fingerprint, and a hit is verified against the stored
// bytes (memcmp), so two bodies that share a fingerprint only share a bucket. Bounded in bytes; a body is kept
// on its second sighting only, so a stream of distinct bodies (the usual traffic) does not promote every
// parsed body into the old generation for nothing.
import type { BodyDerived } from "../scheduling/types.js";
import type { ApiKind, InferenceRequest } from "./openai-request.js";

/** What a chain was computed with: a hit must have been hashed exactly as this request would be. */
export interface ChainKey {
  /** The model whose tokenizer applies (a LoRA adapter's base model). */
  readonly tokenizerModel: string;
  /** The LoRA key mixed into the hashes (null for a base model). */
  readonly lora: string | number | null;
  readonly blockSize: number;
  readonly scheme: string;
  readonly hashSeed: string;
}

export interface MemoEntry {
  readonly kind: ApiKind;
  readonly raw: Buffer;
  /** Shared by every request with these bytes: read-only downstream. */
  readonly parsed: InferenceRequest;
  chain: { key: string; chain: BigUint64Array; promptTokens: number } | null;
  /** Other values derived from the body by their consumers (scheduling's BodyDerived), at most MAX_DERIVED. */
  readonly derived: Map<string, unknown>;
  bytes: number;
}

/** Derived values kept per body (one per estimated-key shape in practice). */
const MAX_DERIVED = 8;

/** Entries per fingerprint bucket: same-length bodies that differ only between samples share one. */
const BUCKET_ENTRIES = 4;
/** Bytes sampled along the body for the fingerprint (plus its last TAIL_BYTES, where user turns end). */
const SAMPLES = 256;
const TAIL_BYTES = 128;
/** Fingerprints remembered as seen once (a body is stored on its second sighting). */
const SEEN_ONCE = 4096;
/** Bookkeeping per entry beyond the bytes (map slots, the entry and chain objects). */
const ENTRY_OVERHEAD = 256;

export function chainKeyOf(k: ChainKey): string {
  return `${k.tokenizerModel}\u0000${k.lora ?? ""}\u0000${k.blockSize}\u0000${k.scheme}\u0000${k.hashSeed}`;
}

export class PromptMemo {
  readonly #maxBytes: number;
  readonly #buckets = new Map<string, MemoEntry[]>();
  /** Every entry, least recently used first. */
  readonly #lru = new Set<MemoEntry>();
  readonly #seenOnce = new Set<string>();
  #bytes = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get entries(): number {
    return this.#lru.size;
  }

  /** The entry for exactly these bytes sent to an endpoint of this kind, or undefined. */
  find(kind: ApiKind, raw: Uint8Array): MemoEntry | undefined {
    if (this.#maxBytes === 0) return undefined;
    const bucket = this.#buckets.get(fingerprint(kind, raw));
    if (bucket === undefined) return undefined;
    for (const e of bucket) {
      if (e.kind === kind && e.raw.equals(raw)) {
        this.#lru.delete(e);
        this.#lru.add(e);
        return e;
      }
    }
    return undefined;
  }

  /**
   * Offers a parsed body; kept (and returned) from its second sighting on, if it fits. Counted as three times
   * the body: the copy of its bytes, and its parse (V8 strings take at most two bytes a character).
   */
  offer(kind: ApiKind, raw: Uint8Array, parsed: InferenceRequest): MemoEntry | undefined {
    const bytes = 3 * raw.byteLength + ENTRY_OVERHEAD;
    if (this.#maxBytes === 0 || bytes > this.#maxBytes / 4) return undefined;
    const fp = fingerprint(kind, raw);
    if (!this.#seenOnce.delete(fp)) {
      if (this.#seenOnce.size >= SEEN_ONCE) this.#seenOnce.clear();
      this.#seenOnce.add(fp);
      return undefined;
    }
    let bucket = this.#buckets.get(fp);
    if (bucket === undefined) {
      bucket = [];
      this.#buckets.set(fp, bucket);
    }
    if (bucket.length >= BUCKET_ENTRIES) this.#remove(bucket[0]!, fp);
    // A copy: the body may be a view into a larger receive buffer that must not stay alive.
    const entry: MemoEntry = { kind, raw: Buffer.from(raw), parsed, chain: null, derived: new Map(), bytes };
    bucket.push(entry);
    this.#lru.add(entry);
    this.#bytes += bytes;
    this.#evict();
    return entry;
  }

  setChain(entry: MemoEntry, key: string, chain: BigUint64Array, promptTokens: number): void {
    if (!this.#lru.has(entry)) return; // evicted meanwhile (the chain is computed asynchronously)
    const before = entry.chain?.chain.byteLength ?? 0;
    entry.chain = { key, chain, promptTokens };
    entry.bytes += chain.byteLength - before;
    this.#bytes += chain.byteLength - before;
    this.#evict();
  }

  /** The entry's derived values as scheduling's `BodyDerived`, counted in the memo's bytes. */
  derivedOf(entry: MemoEntry): BodyDerived {
    return {
      get: (key) => entry.derived.get(key),
      set: (key, value, bytes) => {
        if (!this.#lru.has(entry) || entry.derived.size >= MAX_DERIVED || entry.derived.has(key)) return;
        entry.derived.set(key, value);
        entry.bytes += bytes + key.length;
        this.#bytes += bytes + key.length;
        this.#evict();
      },
    };
  }

  clear(): void {
    this.#buckets.clear();
    this.#lru.clear();
    this.#seenOnce.clear();
    this.#bytes = 0;
  }

  #evict(): void {
    while (this.#bytes > this.#maxBytes) {
      const oldest = this.#lru.values().next().value;
      if (oldest === undefined) return;
      this.#remove(oldest, fingerprint(oldest.kind, oldest.raw));
    }
  }

  #remove(entry: MemoEntry, fp: string): void {
    const bucket = this.#buckets.get(fp);
    if (bucket !== undefined) {
      const at = bucket.indexOf(entry);
      if (at >= 0) bucket.splice(at, 1);
      if (bucket.length === 0) this.#buckets.delete(fp);
    }
    if (this.#lru.delete(entry)) this.#bytes -= entry.bytes;
  }
}

/** Kind, length, FNV-1a over SAMPLES bytes spread along the body and its last TAIL_BYTES: O(1) per body. */
export function fingerprint(kind: ApiKind, raw: Uint8Array): string {
  const n = raw.length;
  let h = 0x811c9dc5;
  const step = Math.max(1, Math.floor(n / SAMPLES));
  for (let i = 0; i < n; i += step) h = Math.imul(h ^ raw[i]!, 0x01000193);
  for (let i = Math.max(0, n - TAIL_BYTES); i < n; i++) h = Math.imul(h ^ raw[i]!, 0x01000193);
  return `${kind}:${n}:${(h >>> 0).toString(36)}`;
}
