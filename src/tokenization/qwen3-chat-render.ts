// The Qwen3 chat template (the bundled tokenizer's, the reference deployment's) written out in plain code
// for the chats it renders most: system, user and assistant turns of text, no tools. Interpreting the Jinja
// template costs ~90 µs per request whatever the prompt's length (one runtime object per value, most of the
// request path's garbage); this costs a string concatenation. Exactness: used only when the template's
// source is byte for byte the Qwen3 one (its sha256 below), and only for contexts whose every branch this
// file reproduces — anything else (tools, tool turns, `</think>` in a turn, a role the template skips,
// non-boolean flags) returns null and the interpreter renders it. qwen3-chat-render.test.ts compares the two
// on the golden chats and on randomised contexts built to reach every branch.
import { createHash } from "node:crypto";

/** sha256 (hex) of the Qwen3 / Qwen3-32B `chat_template` this file reproduces. */
export const QWEN3_TEMPLATE_SHA256 = "87a2728cb8dc9fe424d624542f6060ec05a1d285ebbec578bb078900e33396b5";

/** Whether `source` is the template `renderQwen3Chat` reproduces. */
export function isQwen3Template(source: string): boolean {
  return createHash("sha256").update(source).digest("hex") === QWEN3_TEMPLATE_SHA256;
}

type Json = Record<string, unknown>;

/** Python's str.lstrip('\n'). */
function lstripNewlines(s: string): string {
  let i = 0;
  while (i < s.length && s.charCodeAt(i) === 10) i++;
  return i === 0 ? s : s.slice(i);
}

/**
 * The Qwen3 template's output for `context` (built by chat-request.ts buildChatContext, string content
 * format), or null when the context takes a branch this renderer does not reproduce.
 */
export function renderQwen3Chat(context: Json): string | null {
  const tools = context.tools;
  // `{% if tools %}`: null, undefined and [] are false; anything else is the interpreter's.
  if (!(tools === null || tools === undefined || (Array.isArray(tools) && tools.length === 0))) return null;
  const addGen = context.add_generation_prompt;
  if (typeof addGen !== "boolean") return null;
  const thinking = context.enable_thinking;
  if (!(thinking === undefined || typeof thinking === "boolean")) return null;
  const messages = context.messages;
  if (!Array.isArray(messages) || messages.length === 0) return null;
  // The backward scan for the last real user query (`ns.last_query_index`): without tool turns it is the
  // last user message, unless that one is wrapped in <tool_response>…</tool_response> (then: the interpreter).
  let lastQuery = messages.length - 1;
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as Json;
    if (m.role !== "user") continue;
    const c = m.content;
    if (typeof c !== "string") return null;
    if (c.startsWith("<tool_response>") && c.endsWith("</tool_response>")) return null;
    lastQuery = i;
    break;
  }
  let out = "";
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as Json;
    const content = m.content;
    if (typeof content !== "string") return null;
    const role = m.role;
    if (role === "system") {
      out += `<|im_start|>system\n${content}<|im_end|>\n`;
    } else if (role === "user") {
      out += `<|im_start|>user\n${content}<|im_end|>\n`;
    } else if (role === "assistant") {
      // Reasoning split out of the content, or tool calls: the interpreter's.
      if (m.tool_calls !== undefined || m.reasoning_content !== undefined || content.includes("</think>")) {
        return null;
      }
      // With no reasoning, only the final turn after the last query gets the empty think block.
      out +=
        i > lastQuery && i === messages.length - 1
          ? `<|im_start|>assistant\n<think>\n\n</think>\n\n${lstripNewlines(content)}<|im_end|>\n`
          : `<|im_start|>assistant\n${content}<|im_end|>\n`;
    } else {
      return null; // tool turns; roles the template skips
    }
  }
  if (addGen) {
    out += "<|im_start|>assistant\n";
    if (thinking === false) out += "<think>\n\n</think>\n\n";
  }
  return out;
}
