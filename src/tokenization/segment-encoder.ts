// The exact segmentation rule behind the token cache. Hugging Face tokenizers (the Rust engine and
// @huggingface/tokenizers alike) first cut the input at added tokens — leftmost-longest match, special or
// not, whatever `add_special_tokens` says — and then normalize, pre-tokenize and BPE every text section on its
// own. So the ids of a prompt are the concatenation of the ids of its sections, and a section's ids depend only
// on its text (and, for Metaspace "first" pre-tokenizers, on whether it is section 0). This file reproduces
// that cut and encodes one section with the library's own components; segment-encoder.test.ts proves
// split+encode equals `Tokenizer.encode` on thousands of random prompts.
import { Tokenizer } from "@huggingface/tokenizers";
import type { TokenizerFiles } from "./tokenizer-files.js";

/** A piece of a split prompt: an added token's id, or a text section with its section index. */
export type Piece =
  | { id: number; text?: undefined; section?: undefined }
  | { id?: undefined; text: string; section: number };

interface AddedTokenLike {
  content: string;
  id: number;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
}

/** The library's pipeline stages (public fields at run time; the private ones are pinned by the tests). */
interface Internals {
  normalizer: ((text: string) => string) | null;
  pre_tokenizer: ((text: string, options: { section_index?: number }) => string[]) | null;
  model: ((tokens: string[]) => string[]) & { tokens_to_ids: Map<string, number>; unk_token_id?: number };
  post_processor: ((a: string[], b: string[] | null, addSpecial: boolean) => { tokens: string[] }) | null;
  splitter_normalized: { split(text: string): string[] };
  added_tokens: AddedTokenLike[];
  added_tokens_map: Map<string, AddedTokenLike>;
  remove_space?: boolean;
  do_lowercase_and_remove_accent?: boolean;
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
const MARK = "\u0000kvpick-sequence\u0000";

export class SegmentEncoder {
  readonly tokenizer: Tokenizer;
  /** False when the tokenizer transforms the whole text first (remove_space, lowercasing): no segment cache. */
  readonly segmentable: boolean;
  /** True when a section's ids depend on whether it is section 0 (Metaspace prepend_scheme "first"). */
  readonly firstSectionDiffers: boolean;
  readonly #t: Internals;
  readonly #splitter: RegExp | null;
  /**
   * When every cut token opens with the same character (Qwen3's all open with `<`): the contents, longest
   * first, found by indexOf on that character instead of the alternation (~1 µs instead of ~12 µs on an 8k
   * prompt; same leftmost-longest cut, segment-encoder.test.ts compares the two).
   */
  readonly #lead: { char: string; contents: string[] } | null;
  readonly #byContent = new Map<string, AddedTokenLike>();
  readonly #hasStrip: boolean;
  /** Ids the post-processor adds around a single sequence when add_special_tokens=true, or null if unknown. */
  readonly #specialPrefix: number[] | null = null;
  readonly #specialSuffix: number[] | null = null;

  constructor(files: TokenizerFiles) {
    this.tokenizer = new Tokenizer(files.tokenizerJson, files.tokenizerConfig);
    this.#t = this.tokenizer as unknown as Internals;
    const unnormalized: string[] = [];
    for (const tok of this.#t.added_tokens) {
      // Normalized added tokens are matched after normalization, inside a section (encodeSection does it).
      if (tok.normalized && this.#t.normalizer !== null) continue;
      unnormalized.push(tok.content);
      this.#byContent.set(tok.content, tok);
    }
    // A JS alternation is leftmost-first; listing longer contents first makes it leftmost-longest like the
    // library's trie and the Rust engine's Aho-Corasick (LeftmostLongest).
    unnormalized.sort((a, b) => b.length - a.length);
    this.#splitter = unnormalized.length ? new RegExp(unnormalized.map(escapeRegExp).join("|"), "g") : null;
    const char = unnormalized[0]?.[0];
    this.#lead =
      char !== undefined && unnormalized.every((c) => c[0] === char)
        ? { char, contents: unnormalized }
        : null;
    this.#hasStrip = [...this.#byContent.values()].some((t) => t.lstrip || t.rstrip);
    this.firstSectionDiffers = /"prepend_scheme"\s*:\s*"first"/.test(
      JSON.stringify(files.tokenizerJson.pre_tokenizer ?? null),
    );
    this.segmentable = !this.#t.remove_space && !this.#t.do_lowercase_and_remove_accent;
    const pp = this.#t.post_processor;
    if (pp === null) {
      this.#specialPrefix = [];
      this.#specialSuffix = [];
    } else {
      const out = pp([MARK], null, true).tokens;
      const at = out.indexOf(MARK);
      if (at !== -1 && out.lastIndexOf(MARK) === at) {
        this.#specialPrefix = this.#ids(out.slice(0, at));
        this.#specialSuffix = this.#ids(out.slice(at + 1));
      }
    }
  }

  /** Cuts `text` at added tokens exactly as the library's `encode_text` does (including lstrip/rstrip). */
  split(text: string): Piece[] {
    const re = this.#splitter;
    if (re === null) return text.length ? [{ text, section: 0 }] : [];
    const pieces = this.#lead === null ? this.#splitRegExp(text, re) : this.#splitLead(text, this.#lead);
    return this.#hasStrip ? this.#applyStrip(pieces) : pieces;
  }

  /** `split`'s cut by the alternation (leftmost, then the first listed = the longest). */
  splitRegExp(text: string): Piece[] {
    return this.#splitter === null ? this.split(text) : this.#splitRegExp(text, this.#splitter);
  }

  #splitLead(text: string, lead: { char: string; contents: string[] }): Piece[] {
    const pieces: Piece[] = [];
    let start = 0;
    let section = 0;
    for (let at = text.indexOf(lead.char); at !== -1; ) {
      let found: string | undefined;
      for (const c of lead.contents) {
        if (text.startsWith(c, at)) {
          found = c;
          break;
        }
      }
      if (found === undefined) {
        at = text.indexOf(lead.char, at + 1);
        continue;
      }
      if (at > start) pieces.push({ text: text.slice(start, at), section: section++ });
      pieces.push({ id: this.#byContent.get(found)!.id });
      section++;
      start = at + found.length;
      at = text.indexOf(lead.char, start);
    }
    if (start < text.length) pieces.push({ text: text.slice(start), section });
    return pieces;
  }

  #splitRegExp(text: string, re: RegExp): Piece[] {
    const pieces: Piece[] = [];
    re.lastIndex = 0;
    let start = 0;
    let section = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      if (m.index > start) pieces.push({ text: text.slice(start, m.index), section: section++ });
      pieces.push({ id: this.#byContent.get(m[0])!.id });
      section++;
      start = m.index + m[0].length;
    }
    if (start < text.length) pieces.push({ text: text.slice(start), section });
    return pieces;
  }

  /** lstrip/rstrip tokens swallow the whitespace beside them (JS trim, as the library does). */
  #applyStrip(pieces: Piece[]): Piece[] {
    const contentOf = new Map<number, AddedTokenLike>();
    for (const t of this.#byContent.values()) contentOf.set(t.id, t);
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i]!;
      if (p.id === undefined) continue;
      const tok = contentOf.get(p.id)!;
      const prev = pieces[i - 1];
      const next = pieces[i + 1];
      if (tok.lstrip && prev?.text !== undefined)
        pieces[i - 1] = { text: prev.text.trimEnd(), section: prev.section };
      if (tok.rstrip && next?.text !== undefined)
        pieces[i + 1] = { text: next.text.trimStart(), section: next.section };
    }
    return pieces.filter((p) => p.id !== undefined || p.text.length > 0);
  }

  /** Token ids of one text section (no added tokens at its ends), as the library encodes it inside a prompt. */
  encodeSection(text: string, section: number): Uint32Array {
    const t = this.#t;
    const processed = t.normalizer === null ? text : t.normalizer(text);
    if (processed.length === 0) return new Uint32Array(0);
    const tokens: string[] = [];
    for (const sub of t.splitter_normalized.split(processed)) {
      if (sub.length === 0) continue;
      if (t.added_tokens_map.has(sub)) tokens.push(sub);
      else {
        const words = t.pre_tokenizer === null ? [sub] : t.pre_tokenizer(sub, { section_index: section });
        for (const tok of t.model(words)) tokens.push(tok);
      }
    }
    return Uint32Array.from(this.#ids(tokens));
  }

  /** Whole-text encoding through the library, for tokenizers that cannot be segmented and for tests. */
  encodeWhole(text: string, addSpecialTokens: boolean): Uint32Array {
    return Uint32Array.from(this.tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids);
  }

  /** Adds what the post-processor adds around one sequence (BOS for Llama-style, nothing for Qwen). */
  addSpecialTokens(ids: Uint32Array): Uint32Array | null {
    const pre = this.#specialPrefix;
    const suf = this.#specialSuffix;
    if (pre === null || suf === null) return null;
    if (pre.length === 0 && suf.length === 0) return ids;
    const out = new Uint32Array(pre.length + ids.length + suf.length);
    out.set(pre, 0);
    out.set(ids, pre.length);
    out.set(suf, pre.length + ids.length);
    return out;
  }

  #ids(tokens: string[]): number[] {
    const t = this.#t;
    return tokens.map(
      (tok) => t.added_tokens_map.get(tok)?.id ?? t.model.tokens_to_ids.get(tok) ?? t.model.unk_token_id ?? 0,
    );
  }
}
