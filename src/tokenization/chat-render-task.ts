// Rendering and encoding of one large chat request on a tokenizer worker (tokenize-worker.ts), so a
// 100,000-message conversation never holds the main event loop: the worker receives the request's raw body
// bytes (copying bytes is cheap; structured-cloning 100,000 parsed messages costs the main thread ~250 ms),
// parses them, renders the template and encodes the result. The main thread picks the template (so the
// choice stays in one place) and sends its source.
import { EppError } from "../errors.js";
import { type BlockExtras, BlockHasher, type BlockHasherOptions } from "../kv-index/block-hash.js";
import { buildChatContext, renderChat } from "./chat-request.js";
import { ChatTemplate } from "./chat-template.js";
import { parseRequestJson } from "./python-json.js";
import type { SegmentEncoder } from "./segment-encoder.js";
import type { CacheNamespace, TokenCache } from "./token-cache.js";

/** Templates compiled by this worker, by source (few distinct ones in practice; bounded anyway). */
const MAX_TEMPLATES = 32;
const templates = new Map<string, ChatTemplate>();

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The body as the routing layer parsed it (`routing/openai-request.ts`). Must stay the same parse, or a large
 * conversation would render differently from a small one: chat-render-task.test.ts compares both paths.
 */
export function parseChatBody(raw: Uint8Array): Record<string, unknown> {
  // The lossless, depth-bounded parse: `1.0`, big integers and key order reach the template as Python sees them.
  return parseRequestJson(utf8.decode(raw)) as Record<string, unknown>;
}

function compiled(source: string): ChatTemplate {
  let t = templates.get(source);
  if (t === undefined) {
    t = new ChatTemplate(source);
    if (templates.size >= MAX_TEMPLATES) templates.clear();
    templates.set(source, t);
  }
  return t;
}

/** What a worker answers for a chat task: ids (and hashes when asked), or the client-facing render error. */
export type ChatTaskResult =
  | { ids: Uint32Array; blockHashes?: BigUint64Array }
  | { error: { code: "EPP_BAD_REQUEST"; message: string } };

/** How the caller hashes, so a long prompt is hashed here too (tens of ms of sha256 for 100k messages). */
export interface HashTask {
  hasher: Pick<BlockHasherOptions, "scheme" | "hashSeed" | "blockSize">;
  extras: BlockExtras;
}

/** The hashers of this worker, by options (one per configuration in practice). */
const hashers = new Map<string, BlockHasher>();

function hasherFor(o: HashTask["hasher"]): BlockHasher {
  const key = `${o.scheme}\u0000${o.blockSize}\u0000${o.hashSeed}`;
  let h = hashers.get(key);
  if (h === undefined) {
    // A memo as on the main thread: long conversations grow turn by turn and share their prefix.
    h = new BlockHasher({ ...o, memoBlocks: 65_536 });
    if (hashers.size >= 8) hashers.clear();
    hashers.set(key, h);
  }
  return h;
}

/** A worker's token cache for one tokenizer (section-0 entries apart, as on the main thread). */
export interface WorkerTokenCache {
  cache: TokenCache;
  ns: CacheNamespace;
  ns0: CacheNamespace;
}

export function renderAndEncode(
  enc: SegmentEncoder,
  specialTokens: Record<string, unknown>,
  raw: Uint8Array,
  templateSource: string,
  hash?: HashTask,
  cache?: WorkerTokenCache,
): ChatTaskResult {
  let text: string;
  try {
    const template = compiled(templateSource);
    text = renderChat(template, buildChatContext(parseChatBody(raw), template, specialTokens));
  } catch (err) {
    // EppError does not survive the thread boundary as a class: send what the main thread rethrows.
    if (err instanceof EppError && err.code === "EPP_BAD_REQUEST")
      return { error: { code: err.code, message: err.message } };
    throw err;
  }
  const ids = shared(encodeText(enc, text, cache));
  if (hash === undefined) return { ids };
  return { ids, blockHashes: shared(hasherFor(hash.hasher).hash(ids, hash.extras)) };
}

const SHARED_RESULT_BYTES = 64 * 1024;

/**
 * The result in shared memory: posted back as is, where a plain 5 MB array (the ids of a 100,000-message
 * conversation) is serialised here and copied again on the main thread (tens of ms there).
 */
function shared<T extends Uint32Array | BigUint64Array>(a: T): T {
  if (a.byteLength < SHARED_RESULT_BYTES) return a; // small: a copy costs less than shared memory
  const Ctor = a.constructor as new (buffer: SharedArrayBuffer) => T;
  const out = new Ctor(new SharedArrayBuffer(a.byteLength));
  out.set(a as never);
  return out;
}

/**
 * The prompt's ids (chat: no added special tokens), each distinct section encoded once; with `cache`,
 * sections seen by earlier requests on this worker are not encoded again (the same exact segment cache as the
 * main thread's, see segment-encoder.ts).
 */
export function encodeText(enc: SegmentEncoder, text: string, cache?: WorkerTokenCache): Uint32Array {
  if (!enc.segmentable) return enc.encodeWhole(text, false);
  const pieces = enc.split(text);
  const seen = new Map<string, Uint32Array>();
  const parts: Uint32Array[] = [];
  let total = 0;
  for (const p of pieces) {
    let ids: Uint32Array;
    if (p.text === undefined) ids = Uint32Array.of(p.id);
    else {
      // Section 0 may encode differently (Metaspace "first"): never share its entry.
      const first = enc.firstSectionDiffers && p.section === 0;
      const key = first ? null : p.text;
      const ns = cache === undefined ? undefined : first ? cache.ns0 : cache.ns;
      const hit = key === null ? undefined : seen.get(key);
      const cached = hit ?? (ns === undefined ? undefined : cache!.cache.get(ns, p.text));
      ids = cached ?? enc.encodeSection(p.text, p.section);
      if (key !== null && hit === undefined) seen.set(key, ids);
      if (ns !== undefined && cached === undefined) cache!.cache.set(ns, p.text, ids);
    }
    parts.push(ids);
    total += ids.length;
  }
  const out = new Uint32Array(total);
  let at = 0;
  for (const ids of parts) {
    out.set(ids, at);
    at += ids.length;
  }
  return out;
}
