// Hash-configuration check: vLLM and kvpick must agree on hash algorithm, PYTHONHASHSEED and block size,
// or every lookup silently misses (the most common cause of a 0 % hit rate in the field). A BlockStored
// that starts at token 0 (parent null) carries the tokens of its first block, so kvpick recomputes that
// block's hash with its own configuration and compares. Every BlockStored also tells its pod's block size,
// which teaches kvpick the size when tokenizer.blockSize is not configured (learnt-block-size.ts).
import type { HashAlgo, KeyMode } from "../kv-index/hash-algos.js";
import type { BlockIndex } from "../kv-index/block-index.js";
import { LearntBlockSize } from "../kv-index/learnt-block-size.js";
import { RequestHasher, requestKeyScheme } from "../kv-index/request-key-scheme.js";
import type { Logger } from "../observability/logger.js";
import type { KvEventsRecorder } from "./kv-events-recorder.js";
import type { BlockStoredEvent } from "./decode.js";
import { TokenKeys } from "./token-keys.js";

/** The `tokenizer` config fields that define kvpick's hashes, and kvEvents.keys. */
export interface HashCheckConfig {
  hashAlgo: HashAlgo;
  hashSeed: string | null;
  /** tokenizer.blockSize; null = learnt from the pods (through `blockSizes` when given). */
  blockSize: number | null;
  /** The block size shared with the request path and the scraper; absent = one of its own from `blockSize`. */
  blockSizes?: LearntBlockSize | undefined;
  /** kvEvents.keys; absent = engine (programmatic callers that predate token keys). */
  keys?: KeyMode | undefined;
}

interface PodCheck {
  checks: number;
  mismatches: number;
  warnedHash: boolean;
  blockSizeDiffers: boolean;
}

export class HashCheck {
  readonly #cfg: HashCheckConfig;
  /** Compares root blocks (no memo); null when kvpick's scheme cannot equal the pods'. */
  readonly #hasher: RequestHasher | null;
  readonly #sizes: LearntBlockSize;
  readonly #log: Logger;
  readonly #recorder: KvEventsRecorder;
  readonly #pods = new Map<string, PodCheck>();
  readonly #keyScheme: ReturnType<typeof requestKeyScheme>;
  #keys: TokenKeys | null = null;
  #saidDisabled = false;

  constructor(cfg: HashCheckConfig, logger: Logger, recorder: KvEventsRecorder) {
    this.#cfg = cfg;
    this.#log = logger;
    this.#recorder = recorder;
    this.#keyScheme = requestKeyScheme(cfg);
    this.#sizes = cfg.blockSizes ?? new LearntBlockSize(cfg.blockSize, logger);
    this.#hasher = this.#keyScheme.comparable ? new RequestHasher(this.#keyScheme, this.#sizes) : null;
  }

  /** The token-keyed indexing for this configuration (one per ingest), forgotten with the pods here. */
  createTokenKeys(index: BlockIndex): TokenKeys {
    this.#keys = new TokenKeys({
      mode: this.#cfg.keys ?? "engine",
      hasher: new RequestHasher(this.#keyScheme, this.#sizes),
      comparable: this.#keyScheme.comparable,
      index,
      logger: this.#log,
      metrics: this.#recorder.tokenKeys,
    });
    return this.#keys;
  }

  /** Checks one BlockStored; true when it was checked (block size compared or root hash recomputed). */
  check(pod: string, ev: BlockStoredEvent): boolean {
    const n = ev.blockHashes.length;
    // The event's block size: its own field, else its tokens over its (full) blocks.
    const evSize = ev.blockSize ?? (n > 0 && ev.tokenIds.length % n === 0 ? ev.tokenIds.length / n : null);
    // Learns the size from the first event when none is configured; warns once per pod that differs.
    if (evSize !== null && evSize > 0 && !this.#sizes.observe(pod, evSize, "BlockStored")) {
      this.#pod(pod).blockSizeDiffers = true;
      return true;
    }
    const bs = this.#sizes.value;
    if (bs === null || ev.parentBlockHash !== null || ev.tokenIds.length < bs || n === 0) return false;
    // LoRA, cache_salt and multimodal requests hash extra keys kvpick cannot see here: skip them.
    if (ev.loraId !== null || ev.loraName !== null || (ev.extraKeys !== null && ev.extraKeys[0] != null))
      return false;
    if (this.#hasher === null) {
      if (!this.#saidDisabled && (this.#cfg.keys ?? "engine") === "engine") {
        this.#saidDisabled = true;
        this.#log.info(
          "block-hash check disabled: tokenizer.hashSeed is not set (set it to the pods' PYTHONHASHSEED)",
        );
      }
      return false;
    }
    // A token-keyed pod's engine hashes are never used: comparing them would only cost a hash.
    if (this.#keys?.usesTokens(pod)) return false;
    const p = this.#pod(pod);
    p.checks++;
    p.blockSizeDiffers = false;
    const mine = this.#hasher.hash(ev.tokenIds.subarray(0, bs))[0]!;
    if (mine === ev.blockHashes[0]) return true;
    p.mismatches++;
    this.#recorder.hashMismatch(pod);
    // auto: token-keys.ts logs the switch this leads to instead.
    if (p.warnedHash || this.#cfg.keys === "auto") return true;
    p.warnedHash = true;
    this.#log.warn(
      {
        pod,
        eventHash: ev.blockHashes[0]!.toString(),
        kvpickHash: mine.toString(),
        hashAlgo: this.#cfg.hashAlgo,
        blockSize: bs,
      },
      "block hash from pod differs from kvpick's: prefix-cache routing will miss. Likely causes: PYTHONHASHSEED / vLLM --hash-seed differs from tokenizer.hashSeed (or is unset, making vLLM's root hash random), vLLM --block-size differs from tokenizer.blockSize, --prefix-caching-hash-algo differs from tokenizer.hashAlgo, or a vLLM version with another hash scheme (0.10.0-0.10.1 use sha256_cbor_64bit, 0.10.2+ sha256_cbor). Requests with cache_salt on vLLM < 0.14 also differ: ignore if most checks match (podStates().hashChecks)",
    );
    return true;
  }

  /**
   * Whether the pod's hashes look incompatible with kvpick's: its latest block size differs, or most root
   * checks mismatched (a minority is tolerated: cache_salt requests on old vLLM differ legitimately).
   */
  suspect(pod: string): boolean {
    const p = this.#pods.get(pod);
    return p !== undefined && (p.blockSizeDiffers || p.mismatches * 2 > p.checks);
  }

  stats(pod: string): { checks: number; mismatches: number } {
    const p = this.#pods.get(pod);
    return { checks: p?.checks ?? 0, mismatches: p?.mismatches ?? 0 };
  }

  forget(pod: string): void {
    this.#pods.delete(pod);
    this.#sizes.forget(pod);
    this.#keys?.forget(pod);
  }

  #pod(pod: string): PodCheck {
    let p = this.#pods.get(pod);
    if (p === undefined) {
      p = { checks: 0, mismatches: 0, warnedHash: false, blockSizeDiffers: false };
      this.#pods.set(pod, p);
    }
    return p;
  }
}
