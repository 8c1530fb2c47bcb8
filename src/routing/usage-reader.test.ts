import { describe, expect, it } from "vitest";
import { UsageReader } from "./usage-reader.js";

describe("UsageReader", () => {
  it("finds usage in the last SSE event, across chunk boundaries", () => {
    const r = new UsageReader();
    r.setContentType("text/event-stream");
    const stream =
      'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n' +
      'data: {"choices":[],"usage":{"prompt_tokens":130,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":128}}}\n\n' +
      "data: [DONE]\n\n";
    const bytes = Buffer.from(stream);
    for (let i = 0; i < bytes.length; i += 7) r.push(bytes.subarray(i, i + 7), i + 7 >= bytes.length);
    expect(r.usage).toEqual({ promptTokens: 130, completionTokens: 2, cachedTokens: 128 });
  });

  it("reads usage from a non-streaming JSON body and tolerates invalid JSON", () => {
    const r = new UsageReader();
    r.push(Buffer.from('{"id":"x","usage":{"prompt_tokens":5,'), false);
    r.push(Buffer.from('"completion_tokens":1}}'), true);
    expect(r.usage).toEqual({ promptTokens: 5, completionTokens: 1, cachedTokens: null });
    const bad = new UsageReader();
    bad.push(Buffer.from("{not json"), true);
    expect(bad.usage).toBeNull();
  });
});
