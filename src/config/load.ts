// Turns a config file / inline text / command-line overrides into one validated Config.
// Precedence: defaults < file or text < overrides (flags). Errors name every bad field by its path.
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { ConfigError } from "../errors.js";
import { formatIssue } from "./format-issue.js";
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
  let base: unknown = {};
  if (sources.text !== undefined) base = parseText(sources.text, "--config-text");
  else if (sources.file !== undefined) {
    let text: string;
    try {
      text = readFileSync(sources.file, "utf8");
    } catch (err) {
      throw new ConfigError([`config file ${sources.file}: ${(err as Error).message}`]);
    }
    base = parseText(text, sources.file);
  }
  return parseConfig(deepMerge(base ?? {}, sources.overrides ?? {}));
}

/** Validates an already parsed object; throws ConfigError listing every bad field. */
export function parseConfig(input: unknown): Config {
  const result = configSchema.safeParse(input, { reportInput: true });
  if (result.success) return result.data;
  throw new ConfigError(result.error.issues.map(formatIssue));
}

function parseText(text: string, origin: string): unknown {
  try {
    return parseYaml(text); // YAML is a superset of JSON
  } catch (err) {
    throw new ConfigError([`${origin}: not valid YAML/JSON: ${(err as Error).message.split("\n")[0]}`]);
  }
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
