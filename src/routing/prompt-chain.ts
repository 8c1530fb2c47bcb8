// Prompt → block chain: tokenize once and hash once, exactly as vLLM does (a LoRA adapter is tokenized as
// its base model and hashed with its key). The cache signal is an optimisation: when it cannot be computed
// for a reason that is not the client's fault the request keeps an empty chain and is routed on load alone;
// a client mistake (400, or 413 past tokenizer.maxChatMessages) is returned as the error that ends it.
import { EppError } from "../errors.js";
import type { BlockExtras, BlockHasher } from "../kv-index/block-hash.js";
import type { BodySummary } from "../tokenization/body-summary.js";
import type { LoraAdapters } from "./lora-adapters.js";
import type { InferenceRequest } from "./openai-request.js";
import type { MissingSignal, RouteDecision } from "./route-decision.js";

/** The tokenizer as routing needs it (tokenization/tokenization-service.ts implements it). */
export interface PromptTokenizer {
  tokenize(
    model: string,
    endpoint: "/v1/chat/completions" | "/v1/completions",
    body: Record<string, unknown>,
    /** The body's bytes as received (lets a long conversation render off the main thread). */
    raw?: Uint8Array,
    /** How to hash: a tokenizer that worked off the main thread may hash there too (`blockHashes`). */
    hash?: { hasher: Pick<BlockHasher, "scheme" | "hashSeed" | "blockSize">; extras: BlockExtras },
  ): Promise<{
    tokenIds: Uint32Array;
    renderMicros: number;
    tokenizeMicros: number;
    blockHashes?: BigUint64Array;
  }>;
  /** A large body parsed off the main thread, or null to parse it here (tokenization/body-summary.ts). */
  parseOnWorker?(raw: Uint8Array): Promise<BodySummary> | null;
  /** The tokenizer directory a model name resolves to (for the once-per-model diagnostic line). */
  dirFor?(model: string): string;
}

/** The request hasher as routing needs it (kv-index/request-key-scheme.ts `RequestHasher` implements it). */
export interface ChainHasher {
  /** Tokens per block; null while kvpick has not learnt it from the pods (requests are routed on load alone). */
  readonly blockSize: number | null;
  /** The key scheme and seed, so a tokenizer worker can hash what it renders exactly as `hash` would. */
  readonly scheme: BlockHasher["scheme"];
  readonly hashSeed: string;
  /** vLLM's values of every full block of `tokens`. */
  hash(tokens: ArrayLike<number>, extras?: BlockExtras): BigUint64Array;
  /** `hash`, a long chain spread over event-loop turns (a cold long prompt's ~10 ms of hashing); absent: `hash`. */
  hashSliced?(tokens: ArrayLike<number>, extras?: BlockExtras): Promise<BigUint64Array>;
}

export interface PromptChainDeps {
  tokenizer: PromptTokenizer;
  /** Null when kvpick has no hash configuration: every request is routed on load alone. */
  hasher: ChainHasher | null;
  loras?: LoraAdapters | undefined;
  /** Told when tokenization failed for a reason that is not the client's fault. */
  onTokenizerError(err: unknown): void;
}

export const EMPTY_CHAIN = new BigUint64Array(0);

/**
 * The request's block chain (empty = routed on load alone, with the reason in `decision.missingSignal`),
 * filling in the decision's prompt tokens and tokenize/hash timings; or the client's error.
 */
export async function promptChain(
  deps: PromptChainDeps,
  parsed: InferenceRequest,
  raw: Uint8Array,
  decision: RouteDecision,
): Promise<BigUint64Array | EppError> {
  const lora = deps.loras?.resolve(parsed.model) ?? null;
  const missing = (reason: MissingSignal) => {
    decision.missingSignal = reason;
    return EMPTY_CHAIN;
  };
  // A multimodal prompt is routed on load, with no prefix credit (openai-request.ts).
  if (parsed.multimodal) return missing("multimodal");
  if (parsed.kind === "other") return EMPTY_CHAIN;
  if (lora !== null && !lora.hashable) return missing("lora-id-unknown");
  const hasher = deps.hasher;
  if (hasher === null) return missing("no-hash-config");
  const endpoint = parsed.kind === "chat" ? "/v1/chat/completions" : "/v1/completions";
  const started = performance.now();
  try {
    const extras = { cacheSalt: parsed.cacheSalt, lora: lora?.hashKey ?? null };
    // The worker hashes what it renders when the block size is known (learnt or configured).
    const blockSize = hasher.blockSize;
    const { tokenIds, blockHashes } = await deps.tokenizer.tokenize(
      lora?.tokenizerModel ?? parsed.model,
      endpoint,
      parsed.body,
      raw,
      blockSize === null
        ? undefined
        : { hasher: { scheme: hasher.scheme, hashSeed: hasher.hashSeed, blockSize }, extras },
    );
    decision.promptTokens = tokenIds.length;
    const tokenizedAt = performance.now();
    decision.stages.push({ stage: "tokenize", startMs: started, endMs: tokenizedAt });
    // No pod has told its block size yet (tokenizer.blockSize unset): the prompt still counts as load.
    if (blockHashes === undefined && hasher.blockSize === null) return missing("block-size-unknown");
    // Hashed already where a long conversation was rendered (a worker), else here.
    const chain =
      blockHashes ??
      (hasher.hashSliced ? await hasher.hashSliced(tokenIds, extras) : hasher.hash(tokenIds, extras));
    decision.stages.push({ stage: "hash", startMs: tokenizedAt, endMs: performance.now() });
    return chain;
  } catch (err) {
    // The client's fault (400, or 413 for a conversation beyond tokenizer.maxChatMessages): rejected.
    if (err instanceof EppError && err.httpStatus < 500) return err;
    // Not the client's fault (tokenizer files missing, template bug): route without the cache signal.
    deps.onTokenizerError(err);
    return missing(err instanceof EppError ? err.code : "internal");
  }
}
