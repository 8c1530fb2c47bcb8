// The written-out Qwen3 template against the Jinja interpreter: the golden chats and randomised contexts
// that reach every branch of the template (system first or later, assistant turns before and after the last
// query, leading newlines, `</think>`, tool turns and tool_response-wrapped queries, unknown roles, flags of
// every type). Where the direct renderer answers, it must answer exactly as the interpreter does.
import { describe, expect, it } from "vitest";
import { loadVector } from "../../test/support/golden.js";
import { buildChatContext } from "./chat-request.js";
import { ChatTemplate } from "./chat-template.js";
import { isQwen3Template, renderQwen3Chat } from "./qwen3-chat-render.js";
import { bundledTokenizerDir, loadTokenizerFiles } from "./tokenizer-files.js";
import { seededRng } from "../../test/support/seeded-rng.js";

const files = await loadTokenizerFiles(bundledTokenizerDir("qwen3"));
const template = new ChatTemplate(files.chatTemplate!);
const context = (body: Record<string, unknown>) =>
  buildChatContext(body, template, files.specialTokens).context;

const rng = seededRng;

const CONTENTS = [
  "",
  "Hello",
  "\n\nleading newlines",
  "trailing newlines\n\n",
  "  spaced  ",
  "<think>\nreasoning\n</think>\n\nanswer",
  "a </think> b",
  "<tool_response>x</tool_response>",
  "<tool_response>half",
  "ünïcödé 🚀 \u2028 <|im_end|>",
];
const ROLES = ["system", "user", "assistant", "tool", "developer"];

function randomBody(next: () => number): Record<string, unknown> {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  const messages = Array.from({ length: 1 + Math.floor(next() * 6) }, () => {
    const m: Record<string, unknown> = { role: pick(ROLES), content: pick(CONTENTS) };
    if (next() < 0.1)
      m.content = [
        { type: "text", text: pick(CONTENTS) },
        { type: "text", text: "x" },
      ];
    if (next() < 0.05) m.content = null;
    if (m.role === "assistant" && next() < 0.1) {
      m.tool_calls = [{ id: "c", type: "function", function: { name: "f", arguments: "{}" } }];
    }
    return m;
  });
  const body: Record<string, unknown> = { model: "m", messages };
  if (next() < 0.2) body.add_generation_prompt = next() < 0.5;
  if (next() < 0.2) body.tools = next() < 0.5 ? [] : null;
  if (next() < 0.3) {
    body.chat_template_kwargs = { enable_thinking: pick([true, false, null, 0, "no"]) };
    if (next() < 0.2) (body.chat_template_kwargs as Record<string, unknown>).add_generation_prompt = 1;
  }
  return body;
}

describe("renderQwen3Chat", () => {
  it("recognises the bundled Qwen3 template and nothing else", () => {
    expect(isQwen3Template(files.chatTemplate!)).toBe(true);
    expect(template.hasDirectRender).toBe(true);
    expect(isQwen3Template(`${files.chatTemplate!} `)).toBe(false);
    expect(new ChatTemplate("{{ messages[0].content }}").hasDirectRender).toBe(false);
  });

  it("renders a plain system + user chat without the interpreter, exactly as it does", () => {
    const ctx = context({
      messages: [
        { role: "system", content: "You are helpful." },
        { role: "user", content: "Hi" },
      ],
    });
    const direct = renderQwen3Chat(ctx);
    expect(direct).toBe(
      "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    );
    expect(direct).toBe(template.interpret(ctx));
  });

  it("matches the interpreter on every golden chat it renders", () => {
    const golden = loadVector<{ cases: { endpoint: string; request: Record<string, unknown> }[] }>(
      "qwen3-chat-golden.json",
    );
    let direct = 0;
    for (const c of golden.cases) {
      if (c.endpoint !== "/v1/chat/completions") continue;
      const ctx = context(c.request);
      const out = renderQwen3Chat(ctx);
      if (out === null) continue;
      direct++;
      expect(out).toBe(template.interpret(ctx));
    }
    expect(direct).toBeGreaterThan(0);
  });

  it("matches the interpreter on 3,000 randomised chats, and covers both outcomes", () => {
    const next = rng(16);
    let direct = 0;
    let interpreted = 0;
    for (let n = 0; n < 3000; n++) {
      const body = randomBody(next);
      let ctx: Record<string, unknown>;
      try {
        ctx = context(body);
      } catch {
        continue; // a body vLLM refuses is not rendered at all
      }
      const out = renderQwen3Chat(ctx);
      if (out === null) {
        interpreted++;
        continue;
      }
      direct++;
      expect(out, `case ${n}: ${JSON.stringify(body)}`).toBe(template.interpret(ctx));
      expect(template.render(ctx)).toBe(out);
    }
    expect(direct).toBeGreaterThan(300);
    expect(interpreted).toBeGreaterThan(300);
  });
});
