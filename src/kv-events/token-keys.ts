// Token-keyed indexing (kvEvents.keys; shared/reference/vllm-kv-events.md §2.7, as llm-d, Dynamo and SMG do):
// instead of the engine's block hashes, which depend on the pods' PYTHONHASHSEED and hash algo, the index
// holds kvpick's own chain over the `token_ids` each BlockStored carries (+ the extra keys it carries: LoRA,
// `extra_keys` such as cache_salt and multimodal hashes), computed with the request-side scheme, so every
// request chain compares against every pod. That scheme is kvpick's own cheap chain (kv-index/token-chain.ts)
// unless a seed kvpick can reproduce is configured with keys auto. Per pod an EngineKeyMap resolves
// `parent_block_hash` and `BlockRemoved` (engine hashes) to kvpick keys.
//
// Modes: `engine` never maps; `tokens` always maps; `auto` uses a pod's engine hashes directly while the
// root-block check (hash-check.ts) agrees for it (no extra cost on the reference deployment) and switches
// that pod to token keys, once, when the check says its hashes differ. Without a usable seed (none
// configured, or a pickle algo) `auto` maps every pod from the start: no engine hash could ever match.
import type { KeyMode } from "../kv-index/hash-algos.js";
import { NULL_EXTRA } from "../kv-index/block-hash.js";
import type { BlockIndex } from "../kv-index/block-index.js";
import { CborWriter } from "../kv-index/cbor-writer.js";
import { EngineKeyMap } from "../kv-index/engine-key-map.js";
import { chainKey } from "../kv-index/token-chain.js";
import type { RequestHasher } from "../kv-index/request-key-scheme.js";
import type { Logger } from "../observability/logger.js";
import type { TokenKeysMetrics as Metrics } from "./kv-events-recorder.js";
import type { BlockRemovedEvent, BlockStoredEvent } from "./decode.js";

export interface TokenKeysOptions {
  mode: KeyMode;
  /**
   * The request-side hasher: its scheme, seed and block size (configured, or learnt from the pods) define
   * kvpick's keys.
   */
  hasher: RequestHasher;
  /** Whether the request scheme can equal the pods' hashes (a seed is configured and the algo is reproducible). */
  comparable: boolean;
  index: BlockIndex;
  logger: Logger;
  metrics: Metrics;
}

/** The kvpick keys of an event's blocks: word pairs (lo, hi) in `words[0 .. 2 × count)`, a reused buffer. */
export interface Keys {
  words: Uint32Array;
  count: number;
}

interface PodKeys {
  /** null = the pod's engine hashes are used directly. */
  map: EngineKeyMap | null;
}

/** The chain state passed to a map that keeps none (stateBytes 0). */
const NO_STATE = new Uint8Array(32);

const readU32BE = (b: Uint8Array, off: number): number =>
  ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;

export class TokenKeys {
  readonly mode: KeyMode;
  readonly #hasher: RequestHasher;
  readonly #index: BlockIndex;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  /** Every pod starts in token keys (tokens, or auto without a usable seed). */
  readonly #alwaysTokens: boolean;
  readonly #stateBytes: 0 | 16 | 32;
  readonly #pods = new Map<string, PodKeys>();
  readonly #parent = new Uint8Array(32);
  readonly #cbor = new CborWriter(256);
  #words = new Uint32Array(64);
  readonly #extraWords = new Uint32Array(2);

  constructor(options: TokenKeysOptions) {
    this.mode = options.mode;
    this.#hasher = options.hasher;
    this.#index = options.index;
    this.#log = options.logger;
    this.#metrics = options.metrics;
    this.#alwaysTokens = options.mode === "tokens" || (options.mode === "auto" && !options.comparable);
    const scheme = options.hasher.scheme;
    this.#stateBytes = scheme === "sha256_cbor" ? 32 : scheme === "xxhash_cbor" ? 16 : 0;
  }

  /** Whether the pod's blocks are indexed by token keys. */
  usesTokens(pod: string): boolean {
    return this.#pod(pod).map !== null;
  }

  /**
   * auto: the root check just ran for the pod and its hashes look incompatible (`suspect`). Switches the
   * pod to token keys (once: a pod never switches back) and returns true when the caller must drop the
   * pod's engine-keyed entries.
   */
  checked(pod: string, suspect: boolean): boolean {
    if (this.mode !== "auto" || !suspect) return false;
    const p = this.#pod(pod);
    if (p.map !== null) return false;
    p.map = new EngineKeyMap(this.#stateBytes);
    this.#metrics.kvTokenKeys.set({ pod }, 1);
    this.#log.warn(
      { pod, hashAlgo: this.#hasher.scheme, blockSize: this.#hasher.blockSize },
      "pod's block hashes differ from kvpick's (seed, algo or version): indexing this pod by token keys from now on (kvEvents.keys auto)",
    );
    return true;
  }

  /**
   * The kvpick keys of a BlockStored of a token-keyed pod, recorded in its map; null when none of its
   * blocks can be keyed (unknown parent, tokens that do not fill the blocks, another block size, no block
   * size known yet), counted.
   *
   * The block size is learnt (when not configured) by the hash check from this very event before it gets
   * here, so a token-keyed event is never held waiting for it: the one that still finds no size (no
   * `block_size` field and tokens that do not divide into its blocks) is skipped as `block-size-unknown`.
   */
  stored(pod: string, ev: BlockStoredEvent): Keys | null {
    const map = this.#pod(pod).map!;
    const n = ev.blockHashes.length;
    if (n === 0) return null;
    const h = this.#hasher.current();
    if (ev.tokenIds.length === 0 || h === null) {
      const reason = ev.tokenIds.length === 0 ? "no-tokens" : "block-size-unknown";
      this.#metrics.kvTokenKeysSkipped.inc({ pod, reason }, n);
      return null;
    }
    const bs = h.blockSize;
    if (ev.tokenIds.length !== n * bs || (ev.blockSize !== null && ev.blockSize !== bs)) {
      this.#metrics.kvTokenKeysSkipped.inc({ pod, reason: "block-size" }, n);
      return null;
    }
    const hashes = new Uint32Array(ev.blockHashes.buffer, ev.blockHashes.byteOffset, 2 * n);
    let parent: Uint8Array = this.#parent;
    if (ev.parentBlockHash === null) parent = h.rootDigest;
    else {
      const ph = ev.parentBlockHash;
      const slot = map.find(Number(ph & 0xffffffffn), Number(ph >> 32n));
      // A parent never seen (missed, evicted, or before kvpick started): not a prefix kvpick can key.
      if (slot < 0) {
        this.#metrics.kvTokenKeysSkipped.inc({ pod, reason: "unknown-parent" }, n);
        return null;
      }
      map.stateInto(slot, parent);
    }
    if (this.#words.length < 2 * n) this.#words = new Uint32Array(2 * n);
    const out = this.#words;
    const chain = h.tokenChain;
    if (chain !== null) {
      // kvpick's own chain: the state is the key itself, no digest buffers (token-chain.ts).
      let pLo: number;
      let pHi: number;
      if (ev.parentBlockHash === null) {
        pLo = chain.rootLo;
        pHi = chain.rootHi;
      } else {
        pHi = readU32BE(parent, 24);
        pLo = readU32BE(parent, 28);
      }
      const e = this.#extraWords;
      for (let i = 0; i < n; i++) {
        chain.extraKey(this.#extra(ev, i), e, 0);
        chainKey(pLo, pHi, e[0]!, e[1]!, ev.tokenIds, i * bs, bs, out, 2 * i);
        pLo = out[2 * i]!;
        pHi = out[2 * i + 1]!;
        map.set(hashes[2 * i]!, hashes[2 * i + 1]!, pLo, pHi, NO_STATE);
      }
      return { words: out, count: n };
    }
    for (let i = 0; i < n; i++) {
      const digest = h.chainBlock(parent, ev.tokenIds, i * bs, this.#extra(ev, i));
      const lo = readU32BE(digest, 28);
      const hi = readU32BE(digest, 24);
      map.set(hashes[2 * i]!, hashes[2 * i + 1]!, lo, hi, digest);
      out[2 * i] = lo;
      out[2 * i + 1] = hi;
      parent = digest;
    }
    return { words: out, count: n };
  }

  /** The kvpick keys of a BlockRemoved of a token-keyed pod (blocks it never mapped are left out). */
  removed(pod: string, ev: BlockRemovedEvent): Keys {
    const map = this.#pod(pod).map!;
    const n = ev.blockHashes.length;
    const hashes = new Uint32Array(ev.blockHashes.buffer, ev.blockHashes.byteOffset, 2 * n);
    if (this.#words.length < 2 * n) this.#words = new Uint32Array(2 * n);
    const out = this.#words;
    let count = 0;
    for (let i = 0; i < n; i++) {
      const slot = map.find(hashes[2 * i]!, hashes[2 * i + 1]!);
      if (slot < 0) continue;
      out[2 * count] = map.keyLo(slot);
      out[2 * count + 1] = map.keyHi(slot);
      count++;
    }
    return { words: out, count };
  }

  /**
   * After the index applied a removal: forgets the engine hashes whose block the pod no longer holds in any
   * medium (a copy in another medium, or a second reference, keeps the entry).
   */
  afterRemove(pod: string, ev: BlockRemovedEvent): void {
    const map = this.#pod(pod).map!;
    const n = ev.blockHashes.length;
    const hashes = new Uint32Array(ev.blockHashes.buffer, ev.blockHashes.byteOffset, 2 * n);
    for (let i = 0; i < n; i++) {
      const slot = map.find(hashes[2 * i]!, hashes[2 * i + 1]!);
      if (slot >= 0 && !this.#index.holds(pod, map.keyLo(slot), map.keyHi(slot))) map.deleteSlot(slot);
    }
  }

  /**
   * Keeps the pod's map no larger than its index entries: the index evicted the pod's oldest entries (cap),
   * so the oldest mappings go as well. O(1) when nothing was evicted.
   */
  bound(pod: string): void {
    const map = this.#pods.get(pod)?.map;
    if (map === null || map === undefined) return;
    const excess = map.size - this.#index.podEntryCount(pod);
    if (excess > 0) map.evictOldest(excess);
  }

  /** The pod's blocks were all dropped (AllBlocksCleared, restart, switch): so are its mappings. */
  cleared(pod: string): void {
    const p = this.#pods.get(pod);
    if (p?.map != null) p.map = new EngineKeyMap(this.#stateBytes);
  }

  /** The pod left the pool. */
  forget(pod: string): void {
    if (this.#pods.delete(pod)) this.#metrics.kvTokenKeys.remove({ pod });
  }

  /** Mapped blocks and their bytes, over all pods. */
  stats(): { entries: number; bytes: number } {
    let entries = 0;
    let bytes = 0;
    for (const p of this.#pods.values()) {
      if (p.map === null) continue;
      entries += p.map.size;
      bytes += p.map.bytes;
    }
    return { entries, bytes };
  }

  #pod(pod: string): PodKeys {
    let p = this.#pods.get(pod);
    if (p === undefined) {
      p = { map: this.#alwaysTokens ? new EngineKeyMap(this.#stateBytes) : null };
      this.#pods.set(pod, p);
      if (this.mode !== "engine") this.#metrics.kvTokenKeys.set({ pod }, this.#alwaysTokens ? 1 : 0);
    }
    return p;
  }

  /**
   * vLLM's `extra` tuple of block i as CBOR: the event's own `extra_keys[i]` when it sends them (vLLM ≥
   * 2026-02: LoRA, multimodal and cache_salt parts exactly as hashed), else the LoRA key on every block.
   */
  #extra(ev: BlockStoredEvent, i: number): Uint8Array {
    if (ev.extraKeys !== null) {
      const v = ev.extraKeys[i];
      if (v === null || v === undefined || (Array.isArray(v) && v.length === 0)) return NULL_EXTRA;
      const w = this.#cbor;
      w.reset();
      w.value(v);
      return w.view();
    }
    const lora = ev.loraName ?? ev.loraId;
    if (lora === null) return NULL_EXTRA;
    const w = this.#cbor;
    w.reset();
    w.arrayHead(1);
    if (typeof lora === "number") w.uint(lora);
    else w.text(lora);
    return w.view();
  }
}
