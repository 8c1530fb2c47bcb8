// A large request body parsed on a tokenizer worker instead of the main thread: UTF-8 decoding and the
// lossless parse of a 3 MB, 100,000-message conversation hold a thread ~100 ms, plus the major GC of the
// values it leaves behind. The worker parses the bytes exactly as routing does (the same decoder and
// parseRequestJson) and sends back what the main thread reads to route: the top-level fields except a chat's
// `messages`, which stay on the worker side as three facts (their count, whether one carries media, and their
// JSON text for the estimated prefix). Cloning 100,000 parsed messages back would cost the main thread more
// than parsing them (chat-render-task.ts): the conversation is rendered from the raw bytes on a worker again.
import { hasMediaParts } from "./chat-request.js";
import { JsonError, parseRequestJson } from "./python-json.js";

/** Bodies from this size on are parsed on a worker (when there are workers): ~5 ms of parse on the main thread. */
export const WORKER_PARSE_BYTES = 256 * 1024;

/** What the main thread keeps of a chat's `messages` parsed on a worker. */
export interface OffloadedMessages {
  count: number;
  /** hasMediaParts(messages). */
  hasMedia: boolean;
  /** JSON.stringify(messages): the estimated prefix's text (routing/openai-request.ts promptTextOf). */
  text: string;
}

/**
 * A worker's parse of a body, as the main thread receives it: the body (a chat's messages left out, see
 * `messages`), or why it cannot be read (routing words the 400). Values arrive as plain data: the lossless
 * wrappers and key order do not cross the thread boundary, which is why the template renders on the worker.
 */
export type BodySummary =
  | { body: unknown; messages?: OffloadedMessages }
  | { error: "utf8" }
  | { error: "json"; message: string };

/**
 * Where the main thread keeps OffloadedMessages on a body parsed on a worker (a symbol: not a field a client
 * can send, invisible to JSON.stringify and Object.keys).
 */
export const OFFLOADED_MESSAGES: unique symbol = Symbol("kvpick.offloadedMessages");

/** The OffloadedMessages of a body parsed on a worker, or undefined for a body parsed here. */
export function offloadedMessages(body: Record<string, unknown>): OffloadedMessages | undefined {
  return (body as { [OFFLOADED_MESSAGES]?: OffloadedMessages })[OFFLOADED_MESSAGES];
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Runs on the worker (tokenize-worker.ts). */
export function summarizeBody(raw: Uint8Array): BodySummary {
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    return { error: "utf8" };
  }
  let parsed: unknown;
  try {
    parsed = parseRequestJson(text);
  } catch (err) {
    if (err instanceof JsonError) return { error: "json", message: err.message };
    throw err;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    // Only the shape matters to the caller (it rejects anything but an object): never clone a huge array.
    return { body: Array.isArray(parsed) ? [] : parsed };
  }
  const { messages, ...rest } = parsed as Record<string, unknown>;
  if (!Array.isArray(messages)) return { body: parsed };
  return {
    body: rest,
    messages: { count: messages.length, hasMedia: hasMediaParts(messages), text: JSON.stringify(messages) },
  };
}

/** The main thread's view of a summary's body: OffloadedMessages attached where tokenization looks for them. */
export function withOffloadedMessages(summary: BodySummary): BodySummary {
  if ("error" in summary || summary.messages === undefined) return summary;
  const body = summary.body as Record<string | symbol, unknown>;
  body[OFFLOADED_MESSAGES] = summary.messages;
  return summary;
}
