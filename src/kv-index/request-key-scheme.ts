// kvpick's own block-key scheme: how requests are hashed, and how token-keyed pods' blocks are keyed
// (kvEvents.keys). With a seed and an algo kvpick can reproduce it is the pods' own scheme, so pods whose
// hashes agree are indexed by their engine hashes at no extra cost; otherwise a fixed default, since no
// engine hash could match anyway and every pod is then keyed by kvpick's chain over its events' token ids.
import { type HashAlgo, isReproducible } from "../config/schema.js";
import type { HashScheme } from "./block-hash.js";

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
