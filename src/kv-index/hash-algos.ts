// vLLM's `--prefix-caching-hash-algo` values and kvpick's block-key modes (`kvEvents.keys`): the vocabulary
// the hashing and KV-event code speaks, declared here so the domain never imports the config schema.
/** vLLM `--prefix-caching-hash-algo` values (0.10.0's `sha256_cbor_64bit` and every later one). */
export const HASH_ALGOS = ["sha256_cbor_64bit", "sha256_cbor", "xxhash_cbor", "sha256", "xxhash"] as const;
export type HashAlgo = (typeof HASH_ALGOS)[number];
/**
 * The algos kvpick can reproduce (CBOR input). `sha256` and `xxhash` hash a Python pickle: their engine
 * hashes cannot be recomputed outside Python, so pods using them are indexed by token keys.
 */
export const REPRODUCIBLE_ALGOS = ["sha256_cbor_64bit", "sha256_cbor", "xxhash_cbor"] as const;
export type ReproducibleAlgo = (typeof REPRODUCIBLE_ALGOS)[number];
export const isReproducible = (algo: HashAlgo): algo is ReproducibleAlgo =>
  (REPRODUCIBLE_ALGOS as readonly string[]).includes(algo);

/** How the index keys a pod's blocks (kvEvents.keys). */
export const KEY_MODES = ["auto", "engine", "tokens"] as const;
export type KeyMode = (typeof KEY_MODES)[number];
