// Piscina worker: encodes text sections of cold long prompts, parses large request bodies (body-summary.ts),
// and renders + encodes large chat requests, off the main thread, so one 30k-token prompt or 100,000-message conversation never stalls the event loop that
// serves every other request. Each worker loads a tokenizer directory once.
import { type BodySummary, summarizeBody } from "./body-summary.js";
import {
  type ChatTaskResult,
  type HashTask,
  renderAndEncode,
  type WorkerTokenCache,
} from "./chat-render-task.js";
import { TokenCache } from "./token-cache.js";
import { SegmentEncoder } from "./segment-encoder.js";
import { loadTokenizerFiles, type TokenizerFiles } from "./tokenizer-files.js";

export interface WorkerTask {
  dir: string;
  /** Sections to encode (text between added tokens, with its section index). Empty = just load. */
  sections: { text: string; section: number }[];
  /** Set for tokenizers that cannot be segmented: encode this whole text instead. */
  whole?: { text: string; addSpecialTokens: boolean };
  /** Set for a large chat request: its raw body and the template source the main thread chose. */
  chat?: { raw: Uint8Array; templateSource: string; cacheBytes?: number; hash?: HashTask };
  /** Set to parse a large request body (no tokenizer needed: `dir` is ignored). */
  parse?: Uint8Array;
}

export type WorkerResult = Uint32Array[] | ChatTaskResult | BodySummary;

interface Loaded {
  files: TokenizerFiles;
  enc: SegmentEncoder;
  /** This worker's token cache for the tokenizer's chat renders (warm system prompts cost no encoding). */
  cache: WorkerTokenCache | null;
}

const loaded = new Map<string, Promise<Loaded>>();

function load(dir: string): Promise<Loaded> {
  let p = loaded.get(dir);
  if (p === undefined) {
    p = loadTokenizerFiles(dir).then((files) => ({ files, enc: new SegmentEncoder(files), cache: null }));
    p.catch(() => loaded.delete(dir));
    loaded.set(dir, p);
  }
  return p;
}

/** One cache per worker, shared by its tokenizers through namespaces, sized by the first chat task. */
let tokenCache: TokenCache | null = null;

export default async function encode(task: WorkerTask): Promise<WorkerResult> {
  if (task.parse) return summarizeBody(task.parse);
  const loadedTk = await load(task.dir);
  const { files, enc } = loadedTk;
  if (task.chat) {
    const bytes = task.chat.cacheBytes ?? 0;
    if (bytes > 0 && loadedTk.cache === null) {
      tokenCache ??= new TokenCache(bytes);
      loadedTk.cache = {
        cache: tokenCache,
        ns: tokenCache.namespace(task.dir),
        ns0: tokenCache.namespace(`${task.dir}\u0000section-0`),
      };
    }
    return renderAndEncode(
      enc,
      files.specialTokens,
      task.chat.raw,
      task.chat.templateSource,
      task.chat.hash,
      loadedTk.cache ?? undefined,
    );
  }
  if (task.whole) return [enc.encodeWhole(task.whole.text, task.whole.addSpecialTokens)];
  return task.sections.map((s) => enc.encodeSection(s.text, s.section));
}
