// Parses an OpenAI-style request body once, into what routing needs. The body is kept as the parsed
// object so tokenization never parses it again: parsed the way vLLM's Python reads it (integral floats, big
// integers and key order kept, see python-json.ts) and bounded in nesting depth, so nothing downstream
// (chat template, estimated prefix text) ever walks a value deeper than MAX_JSON_DEPTH.
import { badRequest } from "../errors.js";
import { type BodySummary, offloadedMessages } from "../tokenization/body-summary.js";
import { hasMediaParts } from "../tokenization/chat-request.js";
import { JsonError, parseRequestJson } from "../tokenization/python-json.js";

export type ApiKind = "chat" | "completion" | "other";

export interface InferenceRequest {
  /** `model` as the client sent it (the served model name or a LoRA adapter name). */
  model: string;
  kind: ApiKind;
  body: Record<string, unknown>;
  /** vLLM `cache_salt`: mixed into block 0's hash, so it must reach the hasher. */
  cacheSalt: string | null;
  stream: boolean;
  /**
   * A chat request with image/audio/video content parts. vLLM puts the model's media placeholder tokens in
   * the prompt and mixes the media hashes into the block keys from the first placeholder on, and where the
   * placeholders go depends on the model's processor: kvpick routes such a request on load, with no prefix
   * credit at all (no block chain, no estimated prefix text); the engine decides whether it accepts it.
   */
  multimodal: boolean;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** API kind by `:path` suffix, as GIE's openai-parser does (query string ignored). */
export function apiKindOf(path: string): ApiKind {
  const p = path.split("?", 1)[0]!.replace(/\/+$/, "");
  if (p.endsWith("/chat/completions")) return "chat";
  if (p.endsWith("/completions")) return "completion";
  return "other";
}

/** Throws EppError EPP_BAD_REQUEST (400) with GIE's wording for a body that cannot be routed. */
export function parseInferenceRequest(path: string, raw: Uint8Array): InferenceRequest {
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    return inferenceRequestOf(path, { error: "utf8" });
  }
  let parsed: unknown;
  try {
    parsed = parseRequestJson(text);
  } catch (err) {
    if (!(err instanceof JsonError)) throw err;
    return inferenceRequestOf(path, { error: "json", message: err.message });
  }
  return inferenceRequestOf(path, { body: parsed });
}

/**
 * parseInferenceRequest from a body parsed here or on a tokenizer worker (tokenization/body-summary.ts: a
 * large chat's messages stay there, `offloadedMessages` has what routing reads of them). Same 400s.
 */
export function inferenceRequestOf(path: string, summary: BodySummary): InferenceRequest {
  if ("error" in summary) {
    if (summary.error === "utf8")
      throw badRequest("error unmarshaling request body: body is not valid UTF-8");
    throw badRequest(`error unmarshaling request body: ${summary.message}`);
  }
  const parsed = summary.body;
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw badRequest("error unmarshaling request body: expected a JSON object");
  }
  const body = parsed as Record<string, unknown>;
  const model = body.model;
  if (typeof model !== "string" || model === "") throw badRequest("model not found in request body");
  const kind = apiKindOf(path);
  const offloaded = offloadedMessages(body);
  if (kind === "chat" && !Array.isArray(body.messages) && offloaded === undefined) {
    throw badRequest("`messages` must be an array of chat messages");
  }
  if (kind === "completion" && !("prompt" in body)) throw badRequest("`prompt` is required");
  const salt = body.cache_salt;
  if (salt !== undefined && salt !== null && typeof salt !== "string") {
    throw badRequest("`cache_salt` must be a string");
  }
  return {
    model,
    kind,
    body,
    cacheSalt: typeof salt === "string" && salt !== "" ? salt : null,
    stream: body.stream === true,
    multimodal: kind === "chat" && (offloaded?.hasMedia ?? hasMediaParts(body.messages)),
  };
}

/**
 * The prompt as text for estimated (character-block) prefix matching, as GIE reads it: a chat request's
 * messages as JSON, a completion's prompt (as JSON unless it is a plain string). "" for other requests.
 */
export function promptTextOf(request: InferenceRequest): string {
  if (request.multimodal) return ""; // no prefix credit, estimated or precise (see `multimodal`)
  if (request.kind === "chat") {
    return offloadedMessages(request.body)?.text ?? JSON.stringify(request.body.messages ?? []);
  }
  if (request.kind === "completion") {
    const prompt = request.body.prompt;
    return typeof prompt === "string" ? prompt : JSON.stringify(prompt ?? "");
  }
  return "";
}
