// Python's JSON, as chat templates see it. transformers' `tojson` filter is `json.dumps(x, ensure_ascii=False,
// indent=…, separators=…, sort_keys=…)`, and vLLM turns tool-call `arguments` strings into Python objects with
// `json.loads`. Two things plain JS JSON loses are visible in rendered prompts: a float with an integral value
// (`20.0` stays `20.0` in Python, becomes `20` in JS) and key order (JS objects put integer-like keys first).
// `parseJsonExact` keeps both (PyFloat, Map); `pyJsonDumps` serialises jinja runtime values like Python.

/** A JSON float whose value is integral (`20.0`), so it still prints as a float. */
export class PyFloat {
  readonly value: number;
  constructor(value: number) {
    this.value = value;
  }
}

export type ExactJson = null | boolean | number | string | PyFloat | ExactJson[] | Map<string, ExactJson>;

const WS = /[ \t\n\r]*/y;
// biome-ignore lint/suspicious/noControlCharactersInRegex: JSON forbids raw control characters in strings
const STRING = /"(?:[^"\\\u0000-\u001f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"/y;
const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
const LITERALS: [string, ExactJson][] = [
  ["true", true],
  ["false", false],
  ["null", null],
  ["NaN", Number.NaN], // Python's json.loads accepts these three
  ["Infinity", Number.POSITIVE_INFINITY],
  ["-Infinity", Number.NEGATIVE_INFINITY],
];

/** json.loads with Python's result shapes; throws SyntaxError on invalid JSON. */
export function parseJsonExact(text: string): ExactJson {
  let pos = 0;
  const fail = (what: string): never => {
    throw new SyntaxError(`invalid JSON at position ${pos}: ${what}`);
  };
  const ws = () => {
    WS.lastIndex = pos;
    WS.exec(text);
    pos = WS.lastIndex;
  };
  const match = (re: RegExp): RegExpExecArray | null => {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (m) pos = re.lastIndex;
    return m;
  };
  const value = (depth: number): ExactJson => {
    if (depth > 1000) fail("nested too deeply");
    ws();
    const c = text[pos];
    if (c === "{") {
      pos++;
      const map = new Map<string, ExactJson>();
      ws();
      if (text[pos] === "}") {
        pos++;
        return map;
      }
      for (;;) {
        ws();
        const k = match(STRING) ?? fail("expected a string key");
        ws();
        if (text[pos++] !== ":") fail("expected ':'");
        map.set(JSON.parse(k[0]) as string, value(depth + 1));
        ws();
        const sep = text[pos++];
        if (sep === "}") return map;
        if (sep !== ",") fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      pos++;
      const arr: ExactJson[] = [];
      ws();
      if (text[pos] === "]") {
        pos++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        const sep = text[pos++];
        if (sep === "]") return arr;
        if (sep !== ",") fail("expected ',' or ']'");
      }
    }
    if (c === '"') return JSON.parse((match(STRING) ?? fail("bad string"))[0]) as string;
    for (const [lit, v] of LITERALS) {
      if (text.startsWith(lit, pos)) {
        pos += lit.length;
        return v;
      }
    }
    const m = match(NUMBER) ?? fail("unexpected character");
    const n = Number(m[0]);
    return (m[1] !== undefined || m[2] !== undefined) && Number.isInteger(n) ? new PyFloat(n) : n;
  };
  const result = value(0);
  ws();
  if (pos !== text.length) fail("trailing data");
  return result;
}

/** Python `repr(float)` (what json.dumps prints): shortest digits, exponent form below 1e-4 and from 1e16. */
export function pyFloatRepr(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "Infinity" : "-Infinity";
  if (v === 0) return Object.is(v, -0) ? "-0.0" : "0.0";
  const sign = v < 0 ? "-" : "";
  const [mant, e] = Math.abs(v).toExponential().split("e") as [string, string];
  const digits = mant.replace(".", "");
  const exp = Number(e);
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  if (digits.length <= exp + 1) return `${sign}${digits}${"0".repeat(exp + 1 - digits.length)}.0`;
  return `${sign}${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
}

/** The jinja runtime value shape (@huggingface/jinja does not export its classes). */
export interface RuntimeLike {
  type: string;
  value: unknown;
}

export interface DumpOptions {
  indent?: number | string | null;
  separators?: [string, string] | null;
  sortKeys?: boolean;
  ensureAscii?: boolean;
}

// Applied after JSON.stringify (control characters already escaped): Python's ensure_ascii escapes every
// UTF-16 unit above "~" as \uXXXX (astral characters as their surrogate pair).
const escapeAscii = (s: string) =>
  s.replace(/[\x7f-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`);

/** json.dumps of a jinja runtime value with Python's separators, float repr and escaping. */
export function pyJsonDumps(value: RuntimeLike, options: DumpOptions = {}): string {
  const indentUnit =
    options.indent === null || options.indent === undefined
      ? null
      : typeof options.indent === "number"
        ? " ".repeat(Math.max(0, options.indent))
        : options.indent;
  const [itemSep, keySep] = options.separators ?? (indentUnit === null ? [", ", ": "] : [",", ": "]);
  // JSON.stringify escapes exactly what Python does with ensure_ascii=False (", \, control characters).
  const str = (s: string) => (options.ensureAscii ? escapeAscii(JSON.stringify(s)) : JSON.stringify(s));
  const dump = (v: RuntimeLike, depth: number): string => {
    switch (v.type) {
      case "NullValue":
      case "UndefinedValue":
        return "null";
      case "BooleanValue":
        return v.value ? "true" : "false";
      case "IntegerValue":
        return String(v.value);
      case "FloatValue":
        return pyFloatRepr(v.value as number);
      case "StringValue":
        return str(v.value as string);
      case "ArrayValue":
      case "TupleValue": {
        const items = v.value as RuntimeLike[];
        if (items.length === 0) return "[]";
        return wrap(
          "[",
          "]",
          items.map((x) => dump(x, depth + 1)),
          depth,
        );
      }
      case "ObjectValue":
      case "NamespaceValue":
      case "KeywordArgumentsValue": {
        let entries = [...(v.value as Map<string, RuntimeLike>).entries()];
        if (entries.length === 0) return "{}";
        if (options.sortKeys) entries = entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        return wrap(
          "{",
          "}",
          entries.map(([k, x]) => `${str(k)}${keySep}${dump(x, depth + 1)}`),
          depth,
        );
      }
      default:
        throw new TypeError(`Object of type ${v.type} is not JSON serializable`);
    }
  };
  const wrap = (open: string, close: string, parts: string[], depth: number): string => {
    if (indentUnit === null) return `${open}${parts.join(itemSep)}${close}`;
    const inner = `\n${indentUnit.repeat(depth + 1)}`;
    return `${open}${inner}${parts.join(`${itemSep}${inner}`)}\n${indentUnit.repeat(depth)}${close}`;
  };
  return dump(value, 0);
}
