// Token ids → vLLM's chained KV-block hashes, byte-identical to vLLM's `hash_block_tokens`
// (recipes: shared/reference/vllm-kv-events.md §2; golden vectors in shared/vectors).
//
// 64-bit representation. A chain is a `BigUint64Array`: exact u64 values, one allocation per chain, and
// `chain[i]` gives a bigint for display. Hot paths (the index) never touch bigint: they read the same
// memory through `new Uint32Array(chain.buffer)` as little-endian word pairs, lo = words[2i],
// hi = words[2i+1]. No 64-bit hash ever passes through a JS number.
import { hash as oneShotHash } from "node:crypto";
import { createXXHash128 } from "hash-wasm";
import { BlockHashMemo } from "./block-hash-memo.js";
import { ChainPrefixMemo } from "./block-hash-prefix.js";
import { CborWriter } from "./cbor-writer.js";
import { chainKey, TOKEN_CHAIN_SCHEME, TokenChain } from "./token-chain.js";

/**
 * vLLM `--prefix-caching-hash-algo`:
 * - `sha256_cbor_64bit` (vLLM 0.10.0 – 0.10.1): the chain runs on the low 64 bits of each digest.
 * - `sha256_cbor` (vLLM ≥ 0.10.2): the chain runs on full 32-byte digests; events carry the low 64 bits.
 * - `xxhash_cbor` (vLLM ≥ ~0.13, vllm-project/vllm#29163): xxh3_128 of the same CBOR, 16-byte digests chained
 *   as bytes; events carry the last 8 bytes.
 */
export type HashScheme = "sha256_cbor_64bit" | "sha256_cbor" | "xxhash_cbor";

/**
 * A scheme a BlockHasher computes: vLLM's, or kvpick's own token-key chain (`kvpick_mmh3_64`,
 * token-chain.ts), which no pod computes: kvpick keys token-keyed pods' blocks and requests with it.
 */
export type KeyScheme = HashScheme | typeof TOKEN_CHAIN_SCHEME;

export interface BlockHasherOptions {
  scheme: KeyScheme;
  /** The pods' PYTHONHASHSEED, hashed as a CBOR text string (e.g. "42"). */
  hashSeed: string;
  /** vLLM `--block-size`. */
  blockSize: number;
  /**
   * Recently hashed blocks to remember (exact: a hit is verified against parent and tokens); 0 = none.
   * Requests sharing a system prompt then pay sha256 only for their new blocks.
   */
  memoBlocks?: number;
}

/** Per-request additions to vLLM's `extra` tuple. Plain text requests have none (`extra` = None). */
export interface BlockExtras {
  /** LoRA key on every block: the adapter's int id (vLLM ≤ 0.11.0) or its name (vLLM ≥ 0.11.1). */
  lora?: number | string | null | undefined;
  /** Request `cache_salt`: part of block 0's extra only, and only when non-empty. */
  cacheSalt?: string | null | undefined;
}

if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
  // The word-pair view of BigUint64Array documented above assumes little-endian memory.
  throw new Error("kvpick requires a little-endian platform");
}

const sha256 = (data: Uint8Array): Uint8Array => oneShotHash("sha256", data, "buffer");

// hash-wasm's xxhash128 is XXH3_128 (what Python's xxhash.xxh3_128_digest computes); its hasher is created
// asynchronously once, then used synchronously. Every digest is kept as 32 bytes, the 16-byte xxh3 digest in
// bytes 16..31, so the low-64 read (bytes 24..31) and the memo work the same for both digest sizes.
const xxh3 = await createXXHash128();
function xxh3Padded(data: Uint8Array): Uint8Array {
  xxh3.init();
  xxh3.update(data);
  const out = new Uint8Array(32);
  out.set(xxh3.digest("binary"), 16);
  return out;
}

/** One chain being hashed (BlockHasher.hash / hashSteps): where it is and what it carries. */
interface ChainJob {
  tokens: ArrayLike<number>;
  /** Full blocks. */
  n: number;
  out: BigUint64Array;
  words: Uint32Array;
  extra0: Uint8Array;
  extraRest: Uint8Array;
  /** The digest of block b - 1 (the root's for b = 0). */
  parent: Uint8Array;
  scratch: readonly [Uint8Array, Uint8Array];
  /** Next block to hash. */
  b: number;
  /** Blocks served by the prefix memo, and that entry's digests. */
  start: number;
  from: Uint8Array | null;
  /** Every block's digest, kept to remember a mostly new prompt in the prefix memo. */
  digests: Uint8Array | null;
  prefixes: ChainPrefixMemo | null;
}

/** Chains of at most this many blocks are hashed at once by `hashSliced` (a warm 8k-token prompt: 128). */
const SYNC_HASH_BLOCKS = 256;
/** Blocks between two clock reads in `hashSliced` (~0.3 ms of sha256 when the memo misses). */
const STEP_BLOCKS = 32;
/** A slice of `hashSliced` yields once it has run this long. */
const SLICE_MS = 1;

export class BlockHasher {
  readonly scheme: KeyScheme;
  readonly blockSize: number;
  readonly hashSeed: string;
  /**
   * The scheme's hash of the CBOR-encoded seed: vLLM's NONE_HASH (32 bytes; the 64-bit scheme uses its low
   * 8 bytes, xxhash_cbor's 16-byte digest sits in bytes 16..31).
   */
  readonly rootDigest: Uint8Array;
  readonly #digest: (data: Uint8Array) => Uint8Array;
  readonly #w = new CborWriter(1024);
  readonly #memo: BlockHashMemo | null;
  /** Whole prompts recently hashed (with the memo): a long shared prefix is served in one step. */
  readonly #prefixes: ChainPrefixMemo | null;
  /** prefixHits: blocks served by the prefix memo (counted in `hits` too). */
  #prefixHits = 0;
  /** kvpick's own chain (scheme `kvpick_mmh3_64`), else null. */
  readonly #chain: TokenChain | null;

  constructor(options: BlockHasherOptions) {
    if (!Number.isInteger(options.blockSize) || options.blockSize < 1) {
      throw new RangeError(`blockSize must be a positive integer, got ${options.blockSize}`);
    }
    this.scheme = options.scheme;
    this.blockSize = options.blockSize;
    this.hashSeed = options.hashSeed;
    this.#digest = options.scheme === "xxhash_cbor" ? xxh3Padded : sha256;
    if (options.scheme === TOKEN_CHAIN_SCHEME) {
      // As cheap as the memo's own fingerprint: no memo. The root key sits where the 64-bit schemes keep theirs.
      this.#chain = new TokenChain(options.hashSeed, options.blockSize);
      this.rootDigest = new Uint8Array(32);
      writeU32BE(this.rootDigest, 24, this.#chain.rootHi);
      writeU32BE(this.rootDigest, 28, this.#chain.rootLo);
      this.#memo = null;
      this.#prefixes = null;
      return;
    }
    this.#chain = null;
    const w = new CborWriter(64);
    w.text(options.hashSeed);
    this.rootDigest = new Uint8Array(this.#digest(w.view()));
    const memo = options.memoBlocks ?? 0;
    this.#memo = memo > 0 ? new BlockHashMemo(memo, options.blockSize) : null;
    // Half the per-block memo's block budget again (a quarter of its bytes): ~150 distinct 8k-token prompts
    // with the default 65,536.
    this.#prefixes = memo > 0 ? new ChainPrefixMemo(Math.max(1, memo >> 1), options.blockSize) : null;
  }

  /** Memo hits and misses since creation (both 0 without a memo); `prefixHits` of the hits came whole. */
  memoStats(): { hits: number; misses: number; prefixHits: number } {
    return {
      hits: (this.#memo?.hits ?? 0) + this.#prefixHits,
      misses: this.#memo?.misses ?? 0,
      prefixHits: this.#prefixHits,
    };
  }

  /** kvpick's own chain when the scheme is `kvpick_mmh3_64` (token-keys.ts keys events with it), else null. */
  get tokenChain(): TokenChain | null {
    return this.#chain;
  }

  /** NONE_HASH as vLLM's events would carry it (low 64 bits). */
  get noneHash(): bigint {
    return readU64BE(this.rootDigest, 24);
  }

  /** Number of full blocks — the only ones vLLM hashes — in a prompt of `tokenCount` tokens. */
  fullBlocks(tokenCount: number): number {
    return Math.floor(tokenCount / this.blockSize);
  }

  /**
   * The event values of every full block of `tokens` (a trailing partial block is not hashed).
   * `tokens` are token ids (non-negative ints below 2^32).
   */
  hash(tokens: ArrayLike<number>, extras?: BlockExtras): BigUint64Array {
    if (this.#chain !== null) {
      const [e0, eRest] = encodeExtras(extras);
      return this.#chain.hash(tokens, e0, eRest);
    }
    const job = this.#begin(tokens, extras);
    this.#links(job, job.n);
    return this.#finish(job);
  }

  /**
   * `hash`, with a chain longer than SYNC_HASH_BLOCKS hashed ~SLICE_MS per event-loop turn: a cold 60k-token
   * prompt's ~1,000 blocks take ~10 ms of sha256 when the memo misses (issue 16). Same values.
   */
  async hashSliced(tokens: ArrayLike<number>, extras?: BlockExtras): Promise<BigUint64Array> {
    if (this.fullBlocks(tokens.length) <= SYNC_HASH_BLOCKS) return this.hash(tokens, extras);
    const steps = this.hashSteps(tokens, extras, STEP_BLOCKS);
    for (;;) {
      const until = performance.now() + SLICE_MS;
      for (;;) {
        const step = steps.next();
        if (step.done === true) return step.value;
        if (performance.now() >= until) break;
      }
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /**
   * `hash` as steps: pauses (yields) after every `every` blocks hashed and returns the chain, so a caller can
   * spread a cold 60k-token prompt's ~1,000 blocks (~10 ms) over event-loop turns. Calls may interleave:
   * each keeps its own state (ChainJob).
   */
  *hashSteps(
    tokens: ArrayLike<number>,
    extras: BlockExtras | undefined,
    every: number,
  ): Generator<void, BigUint64Array, void> {
    if (this.#chain !== null) {
      const [e0, eRest] = encodeExtras(extras);
      return this.#chain.hash(tokens, e0, eRest);
    }
    const job = this.#begin(tokens, extras);
    while (job.b < job.n) {
      this.#links(job, Math.min(job.n, job.b + every));
      if (job.b < job.n) yield;
    }
    return this.#finish(job);
  }

  /** A chain to hash: its output, and a remembered prompt's leading blocks copied in already. */
  #begin(tokens: ArrayLike<number>, extras: BlockExtras | undefined): ChainJob {
    const bs = this.blockSize;
    const n = Math.floor(tokens.length / bs);
    const out = new BigUint64Array(n);
    const [extra0, extraRest] = encodeExtras(extras);
    const job: ChainJob = {
      tokens,
      n,
      out,
      words: new Uint32Array(out.buffer),
      extra0,
      extraRest,
      parent: this.rootDigest, // full digest; the 64-bit scheme reads bytes 24..31
      // The memo's digest view is overwritten by later stores: a hit's digest is copied here (per chain: the
      // steps of two chains may interleave).
      scratch: [new Uint8Array(32), new Uint8Array(32)],
      b: 0,
      start: 0,
      from: null,
      digests: null,
      prefixes: null,
    };
    if (n === 0) return job;
    // A remembered prompt's leading blocks, copied whole (plain blocks only: extras change every hash).
    const prefixes = extra0 === NULL_EXTRA && tokens instanceof Uint32Array ? this.#prefixes : null;
    if (prefixes !== null) {
      job.prefixes = prefixes;
      const view = Buffer.from(
        (tokens as Uint32Array).buffer,
        (tokens as Uint32Array).byteOffset,
        n * bs * 4,
      );
      const found = prefixes.match(tokens as Uint32Array, view, n);
      if (found !== null) {
        const start = found.blocks;
        job.from = found.entry.digests;
        job.start = job.b = start;
        out.set(found.entry.chain.subarray(0, start));
        job.parent = job.scratch[(start - 1) & 1]!;
        job.parent.set(found.entry.digests.subarray((start - 1) * 32, start * 32));
        this.#prefixHits += start;
      }
      // Mostly new (a new system prompt, a new conversation): remember it for the requests that follow.
      if (n - job.start > n >> 1) job.digests = new Uint8Array(n * 32);
    }
    return job;
  }

  /** Hashes the job's blocks up to `to` (exclusive). */
  #links(job: ChainJob, to: number): void {
    const { tokens, words, extra0, extraRest, scratch, digests } = job;
    const bs = this.blockSize;
    const memo = this.#memo;
    let parent = job.parent;
    for (let b = job.b; b < to; b++) {
      const base = b * bs;
      const extra = b === 0 ? extra0 : extraRest;
      // The memo is keyed on parent and tokens only, so blocks carrying extras (LoRA, salt) bypass it.
      const memoKey = memo !== null && extra === NULL_EXTRA ? memo.key(parent, tokens, base) : -1;
      let digest: Uint8Array | null = memoKey >= 0 ? memo!.find(memoKey, parent, tokens, base) : null;
      if (digest !== null) {
        const copy = scratch[b & 1]!;
        copy.set(digest);
        digest = copy;
      } else {
        digest = this.chainBlock(parent, tokens, base, extra);
        if (memoKey >= 0) memo!.store(memoKey, parent, tokens, base, digest);
      }
      words[2 * b] = readU32BE(digest, 28);
      words[2 * b + 1] = readU32BE(digest, 24);
      digests?.set(digest, b * 32);
      parent = digest;
    }
    job.parent = parent;
    job.b = Math.max(job.b, to);
  }

  #finish(job: ChainJob): BigUint64Array {
    if (job.digests !== null) {
      // The blocks before `start` came from the matched entry: their digests are that entry's.
      if (job.from !== null) job.digests.set(job.from.subarray(0, job.start * 32));
      job.prefixes!.remember(job.tokens as Uint32Array, job.n, job.out, job.digests);
    }
    return job.out;
  }

  /**
   * One link of the chain: the 32-byte digest of block `tokens[base .. base + blockSize)` after `parent` (a
   * digest this hasher returned, or `rootDigest`), with `extra` = the CBOR of vLLM's extra tuple (or `f6`).
   * The returned buffer is the caller's. Used by `hash` and by the token-keyed index (kv-events), which
   * chains the `token_ids` of BlockStored events with kvpick's own scheme.
   */
  chainBlock(parent: Uint8Array, tokens: ArrayLike<number>, base: number, extra: Uint8Array): Uint8Array {
    if (this.#chain !== null) return this.#ownBlock(parent, tokens, base, extra);
    const w = this.#w;
    const bs = this.blockSize;
    w.reset();
    w.arrayHead(3);
    if (this.scheme === "sha256_cbor") w.bytes(parent);
    else if (this.scheme === "xxhash_cbor") w.bytes(parent.subarray(16, 32));
    else w.uint64BE(isZero64(parent) ? this.rootDigest : parent, 24);
    w.arrayHead(bs);
    for (let i = 0; i < bs; i++) w.uint(tokens[base + i]!);
    w.ensure(extra.length);
    w.buf.set(extra, w.pos);
    w.pos += extra.length;
    return this.#digest(w.view());
  }

  /** chainBlock for kvpick's own chain: the parent key and the new key in bytes 24..31 (big-endian). */
  #ownBlock(parent: Uint8Array, tokens: ArrayLike<number>, base: number, extra: Uint8Array): Uint8Array {
    const chain = this.#chain!;
    const k = new Uint32Array(4);
    chain.extraKey(extra, k, 2);
    const pHi = readU32BE(parent, 24);
    const pLo = readU32BE(parent, 28);
    chainKey(pLo, pHi, k[2]!, k[3]!, tokens, base, this.blockSize, k, 0);
    const out = new Uint8Array(32);
    writeU32BE(out, 24, k[1]!);
    writeU32BE(out, 28, k[0]!);
    return out;
  }
}

/** `f6`: vLLM's extra = None (plain text blocks). */
export const NULL_EXTRA = new Uint8Array([0xf6]);

/** vLLM replaces a falsy parent (a 64-bit hash equal to 0, odds 2^-64) by NONE_HASH. */
function isZero64(d: Uint8Array): boolean {
  for (let i = 24; i < 32; i++) if (d[i] !== 0) return false;
  return true;
}

/** CBOR of `extra` for block 0 and for every later block: `[lora?, salt?]` / `[lora?]`, or null. */
function encodeExtras(extras: BlockExtras | undefined): [Uint8Array, Uint8Array] {
  const lora = extras?.lora ?? null;
  const salt = extras?.cacheSalt ? extras.cacheSalt : null;
  if (lora === null && salt === null) return [NULL_EXTRA, NULL_EXTRA];
  const encode = (withSalt: boolean): Uint8Array => {
    const items = (lora === null ? 0 : 1) + (withSalt && salt !== null ? 1 : 0);
    if (items === 0) return NULL_EXTRA;
    const w = new CborWriter(64);
    w.arrayHead(items);
    if (lora !== null) {
      if (typeof lora === "number") w.uint(lora);
      else w.text(lora);
    }
    if (withSalt && salt !== null) w.text(salt);
    return w.view().slice();
  };
  return [encode(true), encode(false)];
}

function writeU32BE(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 24;
  b[off + 1] = (v >>> 16) & 0xff;
  b[off + 2] = (v >>> 8) & 0xff;
  b[off + 3] = v & 0xff;
}

function readU32BE(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

export function readU64BE(bytes: Uint8Array, off: number): bigint {
  let v = 0n;
  for (let i = 0; i < 8; i++) v = (v << 8n) | BigInt(bytes[off + i]!);
  return v;
}

/** Decimal strings, for JSON output and logs (64-bit values never go through a JS number). */
export function toDecimalStrings(chain: BigUint64Array): string[] {
  return Array.from(chain, (h) => h.toString());
}
