// Turns a config file / inline text / command-line overrides into one validated Config.
// Precedence: defaults < file or text < overrides (flags). Errors name every bad field by its path.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { ConfigError } from "../errors.js";
import { fromDocuments } from "./translators/foreign-config.js";
import { formatIssue } from "../format-issue.js";
import { type Config, type ConfigInput, configSchema } from "./schema.js";

export { formatIssue };

export interface ConfigSources {
  /** Path of a YAML or JSON file. */
  file?: string | undefined;
  /** Inline YAML or JSON (`--config-text`); wins over `file` when both are given. */
  text?: string | undefined;
  /** Values from flags; deep-merged over the file. */
  overrides?: ConfigInput | undefined;
}

export function loadConfig(sources: ConfigSources = {}): Config {
  return loadConfigWithNotes(sources).config;
}

/**
 * As loadConfig, plus `notes`: the parts of a GIE/llm-d/ACK configuration kvpick accepted but ignores (the
 * caller logs them once at info level, when it has a logger).
 */
export function loadConfigWithNotes(sources: ConfigSources = {}): { config: Config; notes: string[] } {
  let docs: unknown[] = [];
  let origin = "--config-text";
  if (sources.text !== undefined) docs = parseText(sources.text, origin);
  else if (sources.file !== undefined) {
    origin = sources.file;
    let text: string;
    try {
      text = readFileSync(sources.file, "utf8");
    } catch (err) {
      throw new ConfigError([`config file ${sources.file}: ${(err as Error).message}`]);
    }
    docs = parseText(text, sources.file);
  }
  const { inputs, notes } = fromDocuments(docs, origin);
  const base = inputs.reduce<unknown>((acc, input) => deepMerge(acc, input), {});
  return { config: parseConfig(deepMerge(base, sources.overrides ?? {})), notes };
}

/** Validates an already parsed object; throws ConfigError listing every bad field. */
export function parseConfig(input: unknown): Config {
  const result = configSchema.safeParse(input, { reportInput: true });
  if (result.success) return result.data;
  throw new ConfigError(result.error.issues.map(formatIssue));
}

/** Every YAML document (`---`-separated) of the text; YAML is a superset of JSON. */
function parseText(text: string, origin: string): unknown[] {
  const docs = parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [docs];
  for (const doc of list) {
    const err = doc.errors[0];
    if (err !== undefined)
      throw new ConfigError([`${origin}: not valid YAML/JSON: ${err.message.split("\n")[0]}`]);
  }
  return list.map((d) => d.toJS());
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v !== undefined) out[k] = deepMerge(base[k], v);
  }
  return out;
}
