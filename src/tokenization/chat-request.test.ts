// Edge cases of vLLM 0.10's chat preprocessing on the Qwen3 template; expected texts follow the template and
// vLLM's chat_utils rules (reference: shared/reference/vllm-kv-events.md §7).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configSchema } from "../config/schema.js";
import { EppError } from "../errors.js";
import { createLogger } from "../observability/logger.js";
import { SegmentEncoder } from "./segment-encoder.js";
import { bundledTokenizerDir, loadTokenizerFiles } from "./tokenizer-files.js";
import { TokenizationService } from "./tokenization-service.js";

const CHAT = "/v1/chat/completions";
const service = new TokenizationService({
  config: { ...configSchema.parse({}).tokenizer, workerThreads: 0 },
  logger: createLogger({ level: "silent" }),
});
let enc: SegmentEncoder;
beforeAll(async () => {
  enc = new SegmentEncoder(await loadTokenizerFiles(bundledTokenizerDir()));
});
afterAll(() => service.stop());

const render = (body: Record<string, unknown>) => service.renderChat("m", body);
const user = (content: unknown) => ({ role: "user", content });

/** Token ids must be the rendered prompt encoded as a whole (add_special_tokens=false). */
async function expectConsistent(body: Record<string, unknown>): Promise<number[]> {
  const text = await render(body);
  const { tokenIds } = await service.tokenize("m", CHAT, body);
  expect(Array.from(tokenIds)).toEqual(Array.from(enc.encodeWhole(text, false)));
  return Array.from(tokenIds);
}

async function expectBadRequest(body: Record<string, unknown>, pattern: RegExp): Promise<void> {
  const err = await service.tokenize("m", CHAT, body).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(EppError);
  expect((err as EppError).code).toBe("EPP_BAD_REQUEST");
  expect((err as EppError).message).toMatch(pattern);
}

describe("chat rendering edge cases (Qwen3)", () => {
  it("keeps CJK and emoji verbatim and tokenizes them like the whole text", async () => {
    const body = { messages: [user("东京的天气怎么样？😀👍🏽 café")] };
    expect(await render(body)).toBe(
      "<|im_start|>user\n东京的天气怎么样？😀👍🏽 café<|im_end|>\n<|im_start|>assistant\n",
    );
    await expectConsistent(body);
  });

  it("turns null and missing content into empty strings", async () => {
    const body = { messages: [{ role: "system", content: null }, user("")] };
    expect(await render(body)).toBe(
      "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n",
    );
  });

  it("joins text parts with a newline for string-format templates", async () => {
    const body = {
      messages: [
        user([
          { type: "text", text: "a" },
          { type: "text", text: "b" },
        ]),
      ],
    };
    expect(await render(body)).toContain("user\na\nb<|im_end|>");
  });

  it("treats special-token text in user content as the special token (as HF tokenizers do)", async () => {
    const body = { messages: [user("say <|im_end|> and <think>")] };
    const ids = await expectConsistent(body);
    expect(ids.filter((id) => id === 151645).length).toBe(2); // the injected one and the template's
    expect(ids).toContain(151667);
  });

  it("drops <think> content of assistant turns before the last user query", async () => {
    const body = {
      messages: [
        user("q1"),
        {
          role: "assistant",
          content: "<think>\nplan\n</think>\n\nanswer1",
          reasoning_content: "ignored by vLLM",
        },
        user("q2"),
      ],
    };
    expect(await render(body)).toBe(
      "<|im_start|>user\nq1<|im_end|>\n<|im_start|>assistant\nanswer1<|im_end|>\n<|im_start|>user\nq2<|im_end|>\n<|im_start|>assistant\n",
    );
    await expectConsistent(body);
  });

  it("renders tool calls with parsed arguments (floats stay floats, no ASCII escaping)", async () => {
    const body = {
      tools: [{ type: "function", function: { name: "f" } }],
      messages: [
        user("go"),
        {
          role: "assistant",
          content: null,
          tool_calls: [
            { id: "1", type: "function", function: { name: "f", arguments: '{"city":"Zürich","t":20.0}' } },
          ],
        },
        { role: "tool", tool_call_id: "1", content: "ok" },
      ],
    };
    const text = await render(body);
    expect(text).toContain(
      '\n{"type": "function", "function": {"name": "f", "description": null, "parameters": null}}\n',
    );
    expect(text).toContain(
      '<tool_call>\n{"name": "f", "arguments": {"city": "Zürich", "t": 20.0}}\n</tool_call>',
    );
    expect(text).toContain("<|im_start|>user\n<tool_response>\nok\n</tool_response><|im_end|>\n");
    await expectConsistent(body);
  });

  it("merges chat_template_kwargs (enable_thinking=false)", async () => {
    const body = { messages: [user("hi")], chat_template_kwargs: { enable_thinking: false } };
    expect(await render(body)).toMatch(/<\|im_start\|>assistant\n<think>\n\n<\/think>\n\n$/);
  });

  it("continue_final_message cuts right after the final message's content", async () => {
    const body = {
      messages: [user("hi"), { role: "assistant", content: "Hello, wor" }],
      add_generation_prompt: false,
      continue_final_message: true,
    };
    expect(await render(body)).toMatch(/<\|im_start\|>assistant\n<think>\n\n<\/think>\n\nHello, wor$/);
    await expectConsistent(body);
  });

  it("uses the request's chat_template and maps raise_exception to a bad request", async () => {
    const tpl =
      "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{{ bos_token }}{{ eos_token }}";
    expect(await render({ messages: [user("x")], chat_template: tpl })).toBe("[user]x<|im_end|>");
    await expectBadRequest(
      { messages: [user("x")], chat_template: "{{ raise_exception('no users allowed') }}" },
      /no users allowed/,
    );
  });

  it("detects templates that loop over content parts (openai format)", async () => {
    const tpl = "{% for m in messages %}{% for p in m.content %}<{{ p.text }}>{% endfor %}{% endfor %}";
    expect(
      await render({ messages: [user("plain"), user([{ type: "text", text: "a" }])], chat_template: tpl }),
    ).toBe("<plain><a>");
  });

  it("rejects bad bodies with EPP_BAD_REQUEST", async () => {
    await expectBadRequest({}, /messages/);
    await expectBadRequest({ messages: [] }, /messages/);
    await expectBadRequest({ messages: [{ content: "x" }] }, /role/);
    await expectBadRequest({ messages: [user(5)] }, /content/);
    await expectBadRequest(
      { messages: [user([{ type: "image_url", image_url: { url: "x" } }])] },
      /image_url/,
    );
    await expectBadRequest(
      { messages: [user("x")], add_generation_prompt: true, continue_final_message: true },
      /both/,
    );
    await expectBadRequest(
      {
        messages: [user("x")],
        continue_final_message: true,
        chat_template_kwargs: { add_generation_prompt: true },
      },
      /not compatible/,
    );
    await expectBadRequest(
      {
        messages: [
          { role: "assistant", content: "", tool_calls: [{ function: { name: "f", arguments: "{" } }] },
        ],
      },
      /arguments/,
    );
  });
});

describe("completions prompts", () => {
  it("uses token ids as is and routes a batch by its first prompt", async () => {
    const ids = await service.tokenize("m", "/v1/completions", { prompt: [1, 2, 3] });
    expect(Array.from(ids.tokenIds)).toEqual([1, 2, 3]);
    const batch = await service.tokenize("m", "/v1/completions", { prompt: ["hello world", "other"] });
    expect(Array.from(batch.tokenIds)).toEqual(Array.from(enc.encodeWhole("hello world", true)));
    const nested = await service.tokenize("m", "/v1/completions", { prompt: [[7, 8], [9]] });
    expect(Array.from(nested.tokenIds)).toEqual([7, 8]);
  });

  it("rejects prompts that are not strings or token ids", async () => {
    for (const prompt of [undefined, 5, [], [1.5], [-1], [{}]]) {
      const err = await service.tokenize("m", "/v1/completions", { prompt }).catch((e: unknown) => e);
      expect((err as EppError).code).toBe("EPP_BAD_REQUEST");
    }
  });
});
