// kvpick's own block-key scheme: how requests are hashed, and how token-keyed pods' blocks are keyed
// (kvEvents.keys). With a seed and an algo kvpick can reproduce, and keys engine or auto, it is the pods' own
// scheme, so pods whose hashes agree are indexed by their engine hashes at no extra cost; otherwise (keys
// tokens, or no usable seed) kvpick's own cheap chain (token-chain.ts), since no engine hash is compared
// and every pod is keyed by that chain over its events' token ids.
import { type HashAlgo, isReproducible, type KeyMode } from "../kv-index/hash-algos.js";
import { type BlockExtras, BlockHasher, type KeyScheme } from "./block-hash.js";
import type { LearntBlockSize } from "./learnt-block-size.js";
import { TOKEN_CHAIN_SCHEME } from "./token-chain.js";

/**
 * The scheme when the pods' hashes are not mirrored: kvpick's own chain (no chain state beyond the key
 * itself: the smallest engine-key map) under its own seed string. Fixed: replicas sharing a Redis index
 * must agree on it.
 */
export const DEFAULT_KEY_SCHEME = { scheme: TOKEN_CHAIN_SCHEME, hashSeed: "kvpick-token-keys" } as const;

export interface RequestKeyScheme {
  scheme: KeyScheme;
  hashSeed: string;
  /** True when this is the pods' configured scheme and seed: their engine hashes may equal kvpick's keys. */
  comparable: boolean;
}

/** `keys` = kvEvents.keys (absent = engine, for callers that predate token keys). */
export function requestKeyScheme(t: {
  hashAlgo: HashAlgo;
  hashSeed: string | null;
  keys?: KeyMode | undefined;
}): RequestKeyScheme {
  if (t.keys !== "tokens" && t.hashSeed !== null && isReproducible(t.hashAlgo))
    return { scheme: t.hashAlgo, hashSeed: t.hashSeed, comparable: true };
  return { ...DEFAULT_KEY_SCHEME, comparable: false };
}

/**
 * kvpick's request-side hasher over the block size in use (configured, or learnt from the pods): built the
 * first time the size is known; until then `current()` is null and requests get no chain.
 */
export class RequestHasher {
  readonly scheme: KeyScheme;
  readonly hashSeed: string;
  readonly #sizes: LearntBlockSize;
  readonly #memoBlocks: number;
  #hasher: BlockHasher | null = null;

  constructor(keys: RequestKeyScheme, sizes: LearntBlockSize, memoBlocks = 0) {
    this.scheme = keys.scheme;
    this.hashSeed = keys.hashSeed;
    this.#sizes = sizes;
    this.#memoBlocks = memoBlocks;
  }

  /** Tokens per block, or null while unknown. */
  get blockSize(): number | null {
    return this.#sizes.value;
  }

  /** The hasher for the size in use, or null while no size is known. (The size never changes once set.) */
  current(): BlockHasher | null {
    if (this.#hasher !== null) return this.#hasher;
    const blockSize = this.#sizes.value;
    if (blockSize === null) return null;
    this.#hasher = new BlockHasher({
      scheme: this.scheme,
      hashSeed: this.hashSeed,
      blockSize,
      memoBlocks: this.#memoBlocks,
    });
    return this.#hasher;
  }

  /** The request chain of `tokens` (vLLM's values); empty while the block size is unknown. */
  hash(tokens: ArrayLike<number>, extras?: BlockExtras): BigUint64Array {
    return this.current()?.hash(tokens, extras) ?? new BigUint64Array(0);
  }

  /** `hash`, a long chain spread over event-loop turns (BlockHasher.hashSliced). */
  hashSliced(tokens: ArrayLike<number>, extras?: BlockExtras): Promise<BigUint64Array> {
    return this.current()?.hashSliced(tokens, extras) ?? Promise.resolve(new BigUint64Array(0));
  }
}
