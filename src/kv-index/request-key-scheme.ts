// kvpick's own block-key scheme: how requests are hashed, and how token-keyed pods' blocks are keyed
// (kvEvents.keys). With a seed and an algo kvpick can reproduce it is the pods' own scheme, so pods whose
// hashes agree are indexed by their engine hashes at no extra cost; otherwise a fixed default, since no
// engine hash could match anyway and every pod is then keyed by kvpick's chain over its events' token ids.
import { type HashAlgo, isReproducible } from "../config/schema.js";
import { type BlockExtras, BlockHasher, type HashScheme } from "./block-hash.js";
import type { LearntBlockSize } from "./learnt-block-size.js";

/**
 * The default when the pods' hashes cannot be reproduced: the 64-bit scheme keeps no chain state beyond the
 * key itself (the smallest engine-key map) and its own seed string, so nothing mistakes it for a pod's.
 */
export const DEFAULT_KEY_SCHEME = { scheme: "sha256_cbor_64bit", hashSeed: "kvpick-token-keys" } as const;

export interface RequestKeyScheme {
  scheme: HashScheme;
  hashSeed: string;
  /** True when this is the pods' configured scheme and seed: their engine hashes may equal kvpick's keys. */
  comparable: boolean;
}

export function requestKeyScheme(t: { hashAlgo: HashAlgo; hashSeed: string | null }): RequestKeyScheme {
  if (t.hashSeed !== null && isReproducible(t.hashAlgo))
    return { scheme: t.hashAlgo, hashSeed: t.hashSeed, comparable: true };
  return { ...DEFAULT_KEY_SCHEME, comparable: false };
}

/**
 * kvpick's request-side hasher over the block size in use (configured, or learnt from the pods): built the
 * first time the size is known; until then `current()` is null and requests get no chain.
 */
export class RequestHasher {
  readonly scheme: HashScheme;
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
}
