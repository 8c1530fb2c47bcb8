// A small GNU/Go-style flag parser: `--name=value`, `--name value`, bare `--flag` for booleans and
// `--flag=false` (GIE's `--secure-serving=false`, which node:util parseArgs rejects). Errors name the flag.

export type FlagKind = "string" | "int" | "bool" | "list";

export interface FlagSpec {
  kind: FlagKind;
  help: string;
  /** Shown in --help; the real default lives in the config schema. */
  default?: string;
}

export type FlagValues = Record<string, string | number | boolean | string[]>;

export class FlagError extends Error {
  override name = "FlagError";
}

export interface ParsedFlags {
  values: FlagValues;
  positionals: string[];
  help: boolean;
}

export function parseFlags(argv: readonly string[], specs: Record<string, FlagSpec>): ParsedFlags {
  const values: FlagValues = {};
  const positionals: string[] = [];
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === "-h" || arg === "--help") {
      help = true;
      continue;
    }
    if (!arg.startsWith("--") || arg === "-") {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const spec = specs[name];
    if (spec === undefined) throw new FlagError(`unknown flag --${name}`);
    let raw: string | undefined = eq === -1 ? undefined : arg.slice(eq + 1);
    if (spec.kind === "bool") {
      if (raw === undefined) {
        values[name] = true;
        continue;
      }
      if (raw !== "true" && raw !== "false")
        throw new FlagError(`--${name}: expected true or false, got "${raw}"`);
      values[name] = raw === "true";
      continue;
    }
    if (raw === undefined) {
      raw = argv[++i];
      if (raw === undefined) throw new FlagError(`--${name}: missing value`);
    }
    if (spec.kind === "int") {
      if (!/^-?\d+$/.test(raw)) throw new FlagError(`--${name}: expected an integer, got "${raw}"`);
      values[name] = Number(raw);
    } else if (spec.kind === "list") {
      const items = raw
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s !== "");
      values[name] = [...((values[name] as string[] | undefined) ?? []), ...items];
    } else values[name] = raw;
  }
  return { values, positionals, help };
}

export function usage(command: string, synopsis: string, specs: Record<string, FlagSpec>): string {
  const rows = Object.entries(specs).map(([name, s]) => {
    const arg = s.kind === "bool" ? "" : s.kind === "int" ? " N" : " VALUE";
    const def = s.default === undefined ? "" : ` (default ${s.default})`;
    return `  --${name}${arg}\n      ${s.help}${def}`;
  });
  return `usage: kvpick ${command} ${synopsis}\n\nflags:\n${rows.join("\n")}\n`;
}
