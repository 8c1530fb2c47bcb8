// A /v1/chat/completions body → the prompt text vLLM 0.10 renders for it (serving_chat → _preprocess_chat →
// chat_utils.parse_chat_messages → transformers apply_chat_template). Every step that changes the rendered
// text is reproduced here: message normalisation, content joining, tool-call argument parsing, tool
// model_dump, kwargs merging, continue_final_message cutting. Client mistakes become EPP_BAD_REQUEST.
import { badRequest } from "../errors.js";
import { type ChatTemplate, TemplateRaise } from "./chat-template.js";
import { JsonError, objectFromEntries, orderedEntries, parseRequestJson } from "./python-json.js";

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

// vLLM's media content parts (chat_utils MM_PARSER_MAP; a part without `type` is recognised by its key).
const MEDIA_PART_TYPES = new Set([
  "image_url",
  "image_embeds",
  "image_pil",
  "audio_url",
  "input_audio",
  "audio_embeds",
  "video_url",
]);

/** A content part that carries media (image, audio, video): the engine, not kvpick, decides its tokens. */
export function isMediaPart(part: unknown): boolean {
  if (!isObject(part)) return false;
  const type = part.type;
  if (typeof type === "string") return MEDIA_PART_TYPES.has(type);
  return type === undefined && ["image_url", "audio_url", "input_audio", "video_url"].some((k) => k in part);
}

/** A chat body with a media part anywhere in its messages. */
export function hasMediaParts(messages: unknown): boolean {
  if (!Array.isArray(messages)) return false;
  return messages.some((m) => isObject(m) && Array.isArray(m.content) && m.content.some(isMediaPart));
}

/** Text of one content part; vLLM's text-like part types. Anything else cannot be tokenized here. */
function partText(part: unknown, where: string): string {
  if (typeof part === "string") return part;
  if (!isObject(part)) throw badRequest(`${where}: content parts must be objects`);
  const type = part.type;
  if ((type === "text" || type === "input_text") && typeof part.text === "string") return part.text;
  if (type === "refusal" && typeof part.refusal === "string") return part.refusal;
  if (isMediaPart(part)) {
    // The request path never gets here (a media request is routed on load without tokenizing); `kvpick hash`
    // does, and has no blocks to print: vLLM's tokens and block keys depend on the model's media processor.
    throw badRequest(
      `${where}: ${JSON.stringify(type ?? "media")} content carries media; kvpick gives such requests no prefix credit (no block hashes)`,
    );
  }
  throw badRequest(`${where}: content part type ${JSON.stringify(type)} is not supported`);
}

/** Python's str.strip() whitespace (differs from JS trim on \x1c-\x1f, \x85 and \ufeff). */
const PY_WS =
  "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const pyStrip = (s: string) => s.replace(new RegExp(`^[${PY_WS}]+|[${PY_WS}]+$`, "g"), "");
const pyLstrip = (s: string) => s.replace(new RegExp(`^[${PY_WS}]+`), "");

/** chat_utils._parse_chat_message_content + _postprocess_messages for one message. */
function normaliseMessage(raw: unknown, i: number, format: "string" | "openai"): Json {
  const where = `messages[${i}]`;
  if (!isObject(raw)) throw badRequest(`${where}: expected an object`);
  const role = raw.role;
  if (typeof role !== "string") throw badRequest(`${where}.role: expected a string`);
  const content = raw.content;
  let parts: string[];
  if (content === null || content === undefined) parts = [];
  else if (typeof content === "string") parts = [content];
  else if (Array.isArray(content)) parts = content.map((p, j) => partText(p, `${where}.content[${j}]`));
  else throw badRequest(`${where}.content: expected a string, an array of content parts or null`);
  const msg: Json = {
    role,
    content: format === "string" ? parts.join("\n") : parts.map((text) => ({ type: "text", text })),
  };
  if (role === "assistant" && raw.tool_calls !== undefined && raw.tool_calls !== null) {
    if (!Array.isArray(raw.tool_calls)) throw badRequest(`${where}.tool_calls: expected an array`);
    msg.tool_calls = raw.tool_calls.map((call, j) => parseToolCall(call, `${where}.tool_calls[${j}]`));
  }
  if (role === "tool" && raw.tool_call_id !== undefined) msg.tool_call_id = raw.tool_call_id;
  if (typeof raw.name === "string") msg.name = raw.name;
  return msg;
}

/**
 * vLLM `_postprocess_messages`: a `function.arguments` JSON string is parsed with json.loads (templates expect
 * dicts), an object is kept, an empty or missing one becomes {}. Parsed Python-faithfully, with the body's
 * nesting limit; the call's own keys keep their sent order.
 */
function parseToolCall(call: unknown, where: string): Json {
  if (!isObject(call) || !isObject(call.function)) throw badRequest(`${where}: expected {function: {...}}`);
  const args = call.function.arguments;
  let parsed: unknown;
  if (args === undefined || args === null || args === "") parsed = {};
  else if (typeof args === "object") parsed = args;
  else if (typeof args !== "string") {
    throw badRequest(`${where}.function.arguments: expected a JSON string or an object`);
  } else {
    try {
      parsed = parseRequestJson(args);
    } catch (err) {
      if (!(err instanceof JsonError)) throw err;
      throw badRequest(`${where}.function.arguments: not valid JSON (${err.message})`);
    }
  }
  const fn = withEntry(call.function, "arguments", parsed);
  return withEntry(call, "function", fn);
}

/** A copy of `obj` with `key` set, keeping the sent key order (a new key goes last, as in a Python dict). */
const withEntry = (obj: Json, key: string, value: unknown): Json => {
  const entries = orderedEntries(obj).map(([k, v]): [string, unknown] => [k, k === key ? value : v]);
  if (!Object.hasOwn(obj, key)) entries.push([key, value]);
  return objectFromEntries(entries);
};

/** pydantic `ChatCompletionToolsParam.model_dump()`: declared fields first (with nulls), extras after. */
function dumpTool(tool: unknown, i: number): Json {
  const where = `tools[${i}]`;
  if (!isObject(tool) || !isObject(tool.function))
    throw badRequest(`${where}: expected {type: "function", function: {...}}`);
  if (tool.type !== undefined && tool.type !== "function")
    throw badRequest(`${where}.type: expected "function"`);
  const { name, description, parameters } = tool.function;
  if (typeof name !== "string") throw badRequest(`${where}.function.name: expected a string`);
  if (description !== undefined && description !== null && typeof description !== "string") {
    throw badRequest(`${where}.function.description: expected a string`);
  }
  if (parameters !== undefined && parameters !== null && !isObject(parameters)) {
    throw badRequest(`${where}.function.parameters: expected an object`);
  }
  // Extras after the declared fields, in the order they were sent (pydantic keeps __pydantic_extra__ so).
  const extras = (obj: Json, declared: string[]) =>
    orderedEntries(obj).filter(([k]) => !declared.includes(k));
  const fn = objectFromEntries([
    ["name", name],
    ["description", description ?? null],
    ["parameters", parameters ?? null],
    ...extras(tool.function, ["name", "description", "parameters"]),
  ]);
  return objectFromEntries([["type", "function"], ["function", fn], ...extras(tool, ["type", "function"])]);
}

export interface ChatRenderSetup {
  /** Template variables (messages, tools, documents, add_generation_prompt, special tokens, kwargs). */
  context: Json;
  continueFinalMessage: boolean;
}

/** Validates the body and builds what apply_chat_template renders. */
export function buildChatContext(
  body: Json,
  template: ChatTemplate,
  specialTokens: Record<string, unknown>,
): ChatRenderSetup {
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0)
    throw badRequest("messages: expected a non-empty array");
  const flag = (name: string, dflt: boolean): boolean => {
    const v = body[name];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== "boolean") throw badRequest(`${name}: expected true or false`);
    return v;
  };
  const cont = flag("continue_final_message", false);
  // vLLM defaults add_generation_prompt to true, and then rejects continue_final_message alone (transformers
  // refuses both). kvpick defaults it to false in that case: vLLM's answer is the client's business, and the
  // prompt a client that also sends add_generation_prompt=false gets is this one.
  const addGen = flag("add_generation_prompt", !cont);
  if (addGen && cont) {
    throw badRequest("add_generation_prompt and continue_final_message cannot both be true");
  }
  const tools = body.tools;
  if (tools !== undefined && tools !== null && !Array.isArray(tools))
    throw badRequest("tools: expected an array");
  const documents = body.documents;
  if (documents !== undefined && documents !== null && !Array.isArray(documents)) {
    throw badRequest("documents: expected an array");
  }
  const kwargs = body.chat_template_kwargs;
  if (kwargs !== undefined && kwargs !== null && !isObject(kwargs)) {
    throw badRequest("chat_template_kwargs: expected an object");
  }
  // vLLM's standard kwargs, then the request's chat_template_kwargs over them (they may override these too).
  const merged: Json = {
    add_generation_prompt: addGen,
    continue_final_message: cont,
    tools: Array.isArray(tools) ? tools.map(dumpTool) : null,
    documents: documents ?? null,
    ...(kwargs ?? {}),
  };
  const continueFinal = merged.continue_final_message === true;
  if (continueFinal && merged.add_generation_prompt === true) {
    throw badRequest("continue_final_message and add_generation_prompt are not compatible");
  }
  const { continue_final_message: _c, chat_template: _t, ...templateKwargs } = merged;
  const context: Json = {
    ...specialTokens,
    ...templateKwargs,
    messages: messages.map((m, i) => normaliseMessage(m, i, template.contentFormat)),
  };
  return { context, continueFinalMessage: continueFinal };
}

/** Renders and, for continue_final_message, cuts right after the final message's content (transformers). */
export function renderChat(template: ChatTemplate, setup: ChatRenderSetup): string {
  let rendered: string;
  try {
    rendered = template.render(setup.context);
  } catch (err) {
    if (err instanceof TemplateRaise) throw badRequest(`chat template: ${err.message}`, err);
    throw err;
  }
  if (!setup.continueFinalMessage) return rendered;
  const messages = setup.context.messages as Json[];
  let final: unknown = messages[messages.length - 1]!.content;
  if (Array.isArray(final)) {
    const block = [...final].reverse().find((b) => isObject(b) && "text" in b) as Json | undefined;
    if (block === undefined)
      throw badRequest("continue_final_message: the final message has no text to continue");
    final = block.text;
  }
  const text = String(final);
  const stripped = pyStrip(text);
  const at = rendered.lastIndexOf(stripped);
  if (at === -1)
    throw badRequest("continue_final_message: the chat template dropped part of the final message");
  const lstripped = pyLstrip(text);
  const keep = rendered.slice(at, at + lstripped.length) === text ? lstripped.length : stripped.length;
  return rendered.slice(0, at + keep);
}
