// Hash-configuration check: vLLM and kvpick must agree on hash algorithm, PYTHONHASHSEED and block size,
// or every lookup silently misses (the most common cause of a 0 % hit rate in the field). A BlockStored
// that starts at token 0 (parent null) carries the tokens of its first block, so kvpick recomputes that
// block's hash with its own configuration and compares.
import type { HashAlgo, KeyMode } from "../config/schema.js";
import { BlockHasher } from "../kv-index/block-hash.js";
import type { BlockIndex } from "../kv-index/block-index.js";
import { requestKeyScheme } from "../kv-index/request-key-scheme.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { BlockStoredEvent } from "./decode.js";
import { TokenKeys } from "./token-keys.js";

/** The `tokenizer` config fields that define kvpick's hashes, and kvEvents.keys. */
export interface HashCheckConfig {
  hashAlgo: HashAlgo;
  hashSeed: string | null;
  blockSize: number;
  /** kvEvents.keys; absent = engine (programmatic callers that predate token keys). */
  keys?: KeyMode | undefined;
}

interface PodCheck {
  checks: number;
  mismatches: number;
  warnedHash: boolean;
  warnedBlockSize: boolean;
  blockSizeDiffers: boolean;
}

export class HashCheck {
  readonly #cfg: HashCheckConfig;
  readonly #hasher: BlockHasher | null;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  readonly #pods = new Map<string, PodCheck>();
  readonly #keyScheme: ReturnType<typeof requestKeyScheme>;
  #keys: TokenKeys | null = null;
  #saidDisabled = false;

  constructor(cfg: HashCheckConfig, logger: Logger, metrics: Metrics) {
    this.#cfg = cfg;
    this.#log = logger;
    this.#metrics = metrics;
    this.#keyScheme = requestKeyScheme(cfg);
    const { scheme, hashSeed, comparable } = this.#keyScheme;
    this.#hasher = comparable ? new BlockHasher({ scheme, hashSeed, blockSize: cfg.blockSize }) : null;
  }

  /** The token-keyed indexing for this configuration (one per ingest), forgotten with the pods here. */
  createTokenKeys(index: BlockIndex): TokenKeys {
    const { scheme, hashSeed, comparable } = this.#keyScheme;
    this.#keys = new TokenKeys({
      mode: this.#cfg.keys ?? "engine",
      hasher: new BlockHasher({ scheme, hashSeed, blockSize: this.#cfg.blockSize }),
      comparable,
      index,
      logger: this.#log,
      metrics: this.#metrics,
    });
    return this.#keys;
  }

  /** Checks one BlockStored; true when it was checked (block size compared or root hash recomputed). */
  check(pod: string, ev: BlockStoredEvent): boolean {
    const bs = this.#cfg.blockSize;
    if (ev.blockSize !== null && ev.blockSize !== bs) {
      const p = this.#pod(pod);
      p.blockSizeDiffers = true;
      if (!p.warnedBlockSize) {
        p.warnedBlockSize = true;
        this.#log.warn(
          { pod, eventBlockSize: ev.blockSize, configBlockSize: bs },
          "pod publishes a different block size than tokenizer.blockSize: its cache can never match; align vLLM --block-size and tokenizer.blockSize",
        );
      }
      return true;
    }
    if (ev.parentBlockHash !== null || ev.tokenIds.length < bs || ev.blockHashes.length === 0) return false;
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
    this.#metrics.kvHashMismatches.inc({ pod });
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
    this.#keys?.forget(pod);
  }

  #pod(pod: string): PodCheck {
    let p = this.#pods.get(pod);
    if (p === undefined) {
      p = { checks: 0, mismatches: 0, warnedHash: false, warnedBlockSize: false, blockSizeDiffers: false };
      this.#pods.set(pod, p);
    }
    return p;
  }
}
