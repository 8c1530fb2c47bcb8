import { describe, expect, it } from "vitest";
import { EppError } from "../errors.js";
import { apiKindOf, parseInferenceRequest } from "./openai-request.js";

const enc = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v));

function rejects(path: string, raw: Uint8Array): EppError {
  try {
    parseInferenceRequest(path, raw);
  } catch (err) {
    expect(err).toBeInstanceOf(EppError);
    return err as EppError;
  }
  throw new Error("expected a rejection");
}

describe("parseInferenceRequest", () => {
  it("classifies the API by path suffix", () => {
    expect(apiKindOf("/v1/chat/completions")).toBe("chat");
    expect(apiKindOf("/v1/chat/completions?x=1")).toBe("chat");
    expect(apiKindOf("/openai/v1/completions/")).toBe("completion");
    expect(apiKindOf("/v1/embeddings")).toBe("other");
  });

  it("parses a chat request with cache_salt and stream", () => {
    const r = parseInferenceRequest(
      "/v1/chat/completions",
      enc({ model: "m", messages: [{ role: "user", content: "hi" }], cache_salt: "t", stream: true }),
    );
    expect(r).toMatchObject({ model: "m", kind: "chat", cacheSalt: "t", stream: true });
  });

  it("rejects what cannot be routed with 400 and GIE's wording", () => {
    expect(rejects("/v1/chat/completions", enc("{nope")).message).toMatch(/^error unmarshaling request body/);
    expect(rejects("/v1/chat/completions", enc([1])).httpStatus).toBe(400);
    expect(rejects("/v1/chat/completions", enc({ messages: [] })).message).toBe(
      "model not found in request body",
    );
    expect(rejects("/v1/chat/completions", enc({ model: "m", messages: "hi" })).message).toMatch(/messages/);
    expect(rejects("/v1/completions", enc({ model: "m" })).message).toMatch(/prompt/);
    expect(rejects("/v1/completions", enc({ model: "m", prompt: "x", cache_salt: 3 })).message).toMatch(
      /cache_salt/,
    );
    expect(rejects("/v1/completions", Buffer.from([0x7b, 0xff, 0x7d])).message).toMatch(/UTF-8/);
    const deep = "[".repeat(200_000) + "]".repeat(200_000);
    expect(rejects("/v1/completions", enc(deep)).httpStatus).toBe(400);
  });
});
