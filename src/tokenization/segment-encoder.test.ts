// Proves the cache's segmentation rule on the bundled Qwen3 tokenizer: cutting a prompt at added tokens and
// encoding each section alone gives exactly the library's whole-text encoding, on thousands of random prompts.
import { beforeAll, describe, expect, it } from "vitest";
import { SegmentEncoder } from "./segment-encoder.js";
import { bundledTokenizerDir, loadTokenizerFiles } from "./tokenizer-files.js";
import { seededRng } from "../../test/support/seeded-rng.js";

const mulberry32 = seededRng;

const FRAGMENTS = [
  "The travel desk",
  " books",
  " flights",
  "hello",
  "World",
  "don't",
  "I'M",
  "we'll",
  "x",
  "42",
  "3.14159",
  "2024-05-01",
  "  ",
  " ",
  "\n",
  "\n\n",
  "\r\n",
  "\t",
  "   \n  ",
  " \t\n",
  "!",
  "?!",
  "...",
  "—",
  "«quote»",
  "你好",
  "世界",
  "東京都",
  "こんにちは",
  "한국어",
  "😀",
  "👍🏽",
  "👨‍👩‍👧",
  "e\u0301",
  "Å",
  "A\u030a",
  "ﬁ",
  "Ω",
  '{"a": 1}',
  "<div>",
  "</div>",
  "<",
  "|",
  ">",
  "<|",
  "|>",
  "<|im_",
  "im_end|>",
  "think>",
  "</",
  "'s",
  "<|im_start|>",
  "<|im_end|>",
  "<|endoftext|>",
  "<think>",
  "</think>",
  "<tool_call>",
  "</tool_call>",
  "<tool_response>",
  "<|vision_pad|>",
  "<|fim_prefix|>",
];

describe("SegmentEncoder (Qwen3)", () => {
  let enc: SegmentEncoder;
  beforeAll(async () => {
    enc = new SegmentEncoder(await loadTokenizerFiles(bundledTokenizerDir()));
  });

  const segmented = (text: string): number[] => {
    const out: number[] = [];
    for (const p of enc.split(text)) {
      if (p.text === undefined) out.push(p.id);
      else out.push(...enc.encodeSection(p.text, p.section));
    }
    return out;
  };

  it("cuts at added tokens, special or not, and keeps the text between them", () => {
    const pieces = enc.split("a<|im_start|>b<think>c</think><|im_end|>");
    expect(pieces).toEqual([
      { text: "a", section: 0 },
      { id: 151644 },
      { text: "b", section: 2 },
      { id: 151667 },
      { text: "c", section: 4 },
      { id: 151668 },
      { id: 151645 },
    ]);
  });

  it("cuts by its first-character scan exactly as by the alternation, on 20,000 random prompts", () => {
    const next = mulberry32(99);
    for (let n = 0; n < 20_000; n++) {
      let text = "";
      for (let k = Math.floor(next() * 12); k > 0; k--)
        text += FRAGMENTS[Math.floor(next() * FRAGMENTS.length)];
      expect(enc.split(text), `prompt ${n}: ${JSON.stringify(text)}`).toEqual(enc.splitRegExp(text));
    }
  });

  it("has a post-processor that adds nothing for Qwen (add_special_tokens=true)", () => {
    const ids = Uint32Array.of(1, 2, 3);
    expect(Array.from(enc.addSpecialTokens(ids)!)).toEqual([1, 2, 3]);
  });

  it("equals whole-text encoding on 2000 random prompts", { timeout: 60_000 }, () => {
    const rnd = mulberry32(2024);
    for (let n = 0; n < 2000; n++) {
      const parts: string[] = [];
      const len = 1 + Math.floor(rnd() * 24);
      for (let i = 0; i < len; i++) parts.push(FRAGMENTS[Math.floor(rnd() * FRAGMENTS.length)]!);
      const text = parts.join("");
      const whole = Array.from(enc.encodeWhole(text, false));
      const seg = segmented(text);
      if (whole.length !== seg.length || whole.some((v, i) => v !== seg[i])) {
        expect({ n, text, ids: seg }).toEqual({ n, text, ids: whole });
      }
    }
  });

  it("equals whole-text encoding on long mixed prompts", { timeout: 60_000 }, () => {
    const rnd = mulberry32(7);
    for (let n = 0; n < 20; n++) {
      const parts: string[] = [];
      for (let i = 0; i < 2000; i++) parts.push(FRAGMENTS[Math.floor(rnd() * FRAGMENTS.length)]!);
      const text = parts.join("");
      expect(segmented(text)).toEqual(Array.from(enc.encodeWhole(text, false)));
    }
  });
});
