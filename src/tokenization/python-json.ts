// Python's JSON, as chat templates see it. vLLM reads a request with Python's `json.loads`, and transformers'
// `tojson` filter is `json.dumps(x, ensure_ascii=False, indent=…, separators=…, sort_keys=…)`; a template
// that prints a value directly gets Python's `str()`. Three things JS's JSON.parse loses are visible in a
// rendered prompt: integral floats (`20.0` prints `20.0` in Python, `20` in JS; `1e20` prints `1e+20`),
// integers beyond 2^53 (Python keeps every digit) and key order (a JS object puts integer-like keys first).
// `parseRequestJson` parses once and keeps all three: PyFloat, PyInt and KEY_ORDER below. Everything else
// is plain JS (objects, arrays, strings, safe integers, non-integral floats), so code that reads a request
// field never sees a difference.

/** A JSON float whose value is integral or not finite (`20.0`, `1e20`, `NaN`): it still prints as a float. */
export class PyFloat {
  readonly value: number;
  constructor(value: number) {
    this.value = value;
  }
}

/** A JSON integer outside ±(2^53−1): `text` keeps every digit (Python ints are unbounded). */
export class PyInt {
  readonly text: string;
  /** The nearest double, for code that only compares or does arithmetic. */
  readonly value: number;
  constructor(text: string) {
    this.text = text;
    this.value = Number(text);
  }
}

/**
 * On a parsed object whose keys JS would reorder (integer-like keys such as "12", "3", "0"): its keys in the
 * order they were sent. Non-enumerable, so a spread or rest copy (which may add or drop keys) never carries
 * a stale order; such a copy falls back to JS order unless rebuilt with `orderedEntries`.
 */
export const KEY_ORDER: unique symbol = Symbol("kvpick.keyOrder");

type Obj = Record<string, unknown>;

/** An object's entries in the order the client sent its keys. */
export function orderedEntries(obj: Obj): [string, unknown][] {
  const order = (obj as { [KEY_ORDER]?: string[] })[KEY_ORDER];
  return order === undefined ? Object.entries(obj) : order.map((k) => [k, obj[k]]);
}

/** Builds an object from entries, recording their order when JS would change it. */
export function objectFromEntries(entries: Iterable<[string, unknown]>): Obj {
  const obj: Obj = {};
  let order: string[] | null = null;
  const keys: string[] = [];
  for (const [k, v] of entries) {
    if (!Object.hasOwn(obj, k)) {
      keys.push(k);
      if (order === null && isIndexKey(k)) order = keys;
    }
    setOwn(obj, k, v);
  }
  if (order !== null) Object.defineProperty(obj, KEY_ORDER, { value: order });
  return obj;
}

// The keys V8 orders first: canonical array indices (0 … 2^32−2).
const INDEX_KEY = /^(?:0|[1-9]\d{0,9})$/;
const isIndexKey = (k: string) => INDEX_KEY.test(k) && Number(k) < 4294967295;

// "__proto__" must become an own property (as JSON.parse makes it), not the prototype.
const setOwn = (obj: Obj, k: string, v: unknown) => {
  if (k === "__proto__")
    Object.defineProperty(obj, k, { value: v, enumerable: true, writable: true, configurable: true });
  else obj[k] = v;
};

/**
 * Nesting limit for a request body, and for JSON found inside one (tool-call arguments). CPython's json
 * parser recurses once per level under the interpreter's recursion limit (1,000 by default, less the frames
 * already on the stack; 3.12+ counts a separate C limit of a similar size), so vLLM cannot read a body nested
 * ~1,000 deep; 4,096 stays above that on every CPython vLLM supports, and keeps every walk kvpick does over
 * a parsed value (template conversion, json.dumps, JSON.stringify for estimated prefixes) far below V8's stack.
 */
export const MAX_JSON_DEPTH = 4096;

/** A value kvpick will not read: invalid JSON or nested deeper than MAX_JSON_DEPTH. */
export class JsonError extends SyntaxError {
  override name = "JsonError";
}

// Fast path: V8's JSON.parse, then one iterative walk over the containers (the depth check needs it anyway)
// that finds what JS would render differently: an integer-like key (V8 lists those first, so one key per
// object is looked at), an integer beyond 2^53, or an integral number, which may have been written as a
// float. Only then is the text looked at, for a number literal right after `:`, `,` or `[` that is an
// integral float (`1.0`, an exponent, or 16+ digits). Strings may match too; that only costs the slower parse.
const INTEGRAL_FLOAT = /[:,[]\s*-?(?:\d+(?:\.0+(?![1-9])|(?:\.\d+)?[eE])|(?=[\d.]{16}))/;

/**
 * `json.loads` of a request body, Python-faithful where it shows (see the header): V8's JSON.parse when the
 * body holds nothing JS would render differently, `parseJsonLossless` otherwise. Throws JsonError for
 * invalid JSON and for nesting deeper than `maxDepth`.
 */
export function parseRequestJson(text: string, maxDepth = MAX_JSON_DEPTH): unknown {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return parseJsonLossless(text, maxDepth); // NaN / Infinity, or the precise error message
  }
  if (typeof v !== "object" || v === null) return parseJsonLossless(text, maxDepth); // a bare scalar
  const found = scan(v, maxDepth);
  if (found === "lossy" || (found === "integral" && INTEGRAL_FLOAT.test(text)))
    return parseJsonLossless(text, maxDepth);
  return v;
}

/** Iterative walk of a parsed object or array: depth check, and whether JS may have lost something. */
function scan(root: object, maxDepth: number): "lossy" | "integral" | "plain" {
  let integral = false;
  const stack: [unknown, number][] = [[root, 1]];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const [v, depth] = item;
    if (depth > maxDepth) throw new JsonError(`nested deeper than ${maxDepth} levels`);
    let children: unknown[];
    if (Array.isArray(v)) children = v;
    else {
      const first = Object.keys(v as Obj)[0];
      if (first !== undefined && isIndexKey(first)) return "lossy";
      children = Object.values(v as Obj);
    }
    for (const c of children) {
      if (typeof c === "number") {
        if (Number.isInteger(c)) {
          if (!Number.isSafeInteger(c)) return "lossy";
          integral = true;
        }
      } else if (typeof c === "object" && c !== null) stack.push([c, depth + 1]);
    }
  }
  return integral ? "integral" : "plain";
}

const WS = /[ \t\n\r]*/y;
const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
// biome-ignore lint/suspicious/noControlCharactersInRegex: JSON forbids raw control characters in strings
const NEEDS_DECODE = /[\\\u0000-\u001f]/;
const LITERALS: [string, unknown][] = [
  ["true", true],
  ["false", false],
  ["null", null],
  ["NaN", new PyFloat(Number.NaN)], // Python's json.loads accepts these three
  ["Infinity", new PyFloat(Number.POSITIVE_INFINITY)],
  ["-Infinity", new PyFloat(Number.NEGATIVE_INFINITY)],
];

interface Frame {
  arr: unknown[] | null;
  obj: Obj | null;
  key: string;
  keys: string[] | null; // every key in sent order, kept only once an index key appeared
  all: string[];
}

/**
 * `json.loads` with Python's result shapes (PyFloat, PyInt, KEY_ORDER), iterative (an explicit stack, so no
 * depth can overflow the JS stack) and bounded by `maxDepth`. Throws JsonError.
 */
export function parseJsonLossless(text: string, maxDepth = MAX_JSON_DEPTH): unknown {
  let pos = 0;
  const fail = (what: string): never => {
    throw new JsonError(`invalid JSON at position ${pos}: ${what}`);
  };
  const ws = () => {
    WS.lastIndex = pos;
    WS.exec(text);
    pos = WS.lastIndex;
  };
  const string = (): string => {
    const start = pos; // at the opening quote
    let end = pos + 1;
    for (;;) {
      end = text.indexOf('"', end);
      if (end === -1) fail("unterminated string");
      let bs = 0;
      while (text.charCodeAt(end - 1 - bs) === 92) bs++;
      if (bs % 2 === 0) break;
      end++;
    }
    pos = end + 1;
    const raw = text.slice(start + 1, end);
    if (!NEEDS_DECODE.test(raw)) return raw;
    try {
      return JSON.parse(text.slice(start, end + 1)) as string;
    } catch {
      pos = start;
      return fail("invalid string");
    }
  };
  const scalar = (): unknown => {
    const c = text.charCodeAt(pos);
    if (c === 34) return string();
    for (const [lit, v] of LITERALS) {
      if (text.startsWith(lit, pos)) {
        pos += lit.length;
        return v;
      }
    }
    NUMBER.lastIndex = pos;
    const m = NUMBER.exec(text) ?? fail("unexpected character");
    pos = NUMBER.lastIndex;
    const n = Number(m[0]);
    if (m[1] !== undefined || m[2] !== undefined)
      return Number.isInteger(n) || !Number.isFinite(n) ? new PyFloat(n) : n;
    return Number.isSafeInteger(n) ? n : new PyInt(m[0]);
  };
  const stack: Frame[] = [];
  const key = (f: Frame) => {
    ws();
    if (text.charCodeAt(pos) !== 34) fail("expected a string key");
    f.key = string();
    if (!Object.hasOwn(f.obj!, f.key)) {
      f.all.push(f.key);
      if (f.keys === null && isIndexKey(f.key)) f.keys = f.all;
    }
    ws();
    if (text[pos++] !== ":") fail("expected ':'");
  };
  const close = (f: Frame): unknown => {
    if (f.arr !== null) return f.arr;
    if (f.keys !== null) Object.defineProperty(f.obj, KEY_ORDER, { value: f.keys });
    return f.obj;
  };
  for (;;) {
    // A value starts here: open a container, or read a scalar.
    ws();
    const c = text[pos];
    let value: unknown;
    if (c === "{" || c === "[") {
      if (stack.length >= maxDepth) fail(`nested deeper than ${maxDepth} levels`);
      pos++;
      const f: Frame =
        c === "{"
          ? { arr: null, obj: {}, key: "", keys: null, all: [] }
          : { arr: [], obj: null, key: "", keys: null, all: [] };
      ws();
      if (text[pos] === (c === "{" ? "}" : "]")) {
        pos++;
        value = close(f);
      } else {
        stack.push(f);
        if (f.obj !== null) key(f);
        continue;
      }
    } else value = scalar();
    // A value is complete: store it, then read ',' (next value) or close containers.
    for (;;) {
      const top = stack[stack.length - 1];
      if (top === undefined) {
        ws();
        if (pos !== text.length) fail("trailing data");
        return value;
      }
      if (top.arr !== null) top.arr.push(value);
      else setOwn(top.obj!, top.key, value);
      ws();
      const sep = text[pos++];
      if (sep === ",") {
        if (top.obj !== null) key(top);
        break;
      }
      if (sep !== (top.arr !== null ? "]" : "}"))
        fail(top.arr !== null ? "expected ',' or ']'" : "expected ',' or '}'");
      stack.pop();
      value = close(top);
    }
  }
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

/** Python `str(float)`: repr, except that non-finite values print as Python names them. */
export function pyFloatStr(v: number): string {
  if (Number.isNaN(v)) return "nan";
  if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
  return pyFloatRepr(v);
}

// Python's str.isprintable(): not Other (Cc, Cf, Cs, Co, Cn) nor Separator except the ASCII space.
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;

/** Python `repr(str)`: single quotes unless the text has ' and no ", escapes as CPython's unicode_repr. */
export function pyStrRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === quote || ch === "\\") out += `\\${ch}`;
    else if (ch === "\t") out += "\\t";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (cp < 0x20 || cp === 0x7f) out += `\\x${cp.toString(16).padStart(2, "0")}`;
    else if (cp < 0x7f || (ch !== " " && !UNPRINTABLE.test(ch))) out += ch;
    else if (cp === 0x20) out += ch;
    else if (cp < 0x100) out += `\\x${cp.toString(16).padStart(2, "0")}`;
    else if (cp < 0x10000) out += `\\u${cp.toString(16).padStart(4, "0")}`;
    else out += `\\U${cp.toString(16).padStart(8, "0")}`;
  }
  return out + quote;
}

/**
 * Python `str()` of a jinja runtime value, as Jinja2 prints `{{ x }}` and `x ~ y`: strings as they are,
 * containers as their repr (`{'a': 1.0, 'b': None, 'c': True}`), floats as repr, None/True/False by name.
 */
export function pyStr(v: RuntimeLike): string {
  return v.type === "StringValue" ? (v.value as string) : pyRepr(v);
}

/** Python `repr()` of a jinja runtime value (iterative: containers can nest up to MAX_JSON_DEPTH). */
export function pyRepr(root: RuntimeLike): string {
  let out = "";
  // Work items: a value to print, or literal text (separators, closing brackets).
  const todo: (RuntimeLike | string)[] = [root];
  for (let item = todo.pop(); item !== undefined; item = todo.pop()) {
    if (typeof item === "string") {
      out += item;
      continue;
    }
    const v = item;
    switch (v.type) {
      case "StringValue":
        out += pyStrRepr(v.value as string);
        break;
      case "NullValue":
        out += "None";
        break;
      case "UndefinedValue":
        break; // Jinja2's Undefined prints as ""
      case "BooleanValue":
        out += v.value ? "True" : "False";
        break;
      case "FloatValue":
        out += pyFloatStr(v.value as number);
        break;
      case "ArrayValue":
      case "TupleValue": {
        const items = v.value as RuntimeLike[];
        const tuple = v.type === "TupleValue";
        const parts: (RuntimeLike | string)[] = [tuple ? "(" : "["];
        for (let i = 0; i < items.length; i++) parts.push(...(i === 0 ? [items[i]!] : [", ", items[i]!]));
        parts.push(tuple ? (items.length === 1 ? ",)" : ")") : "]");
        for (let i = parts.length - 1; i >= 0; i--) todo.push(parts[i]!);
        break;
      }
      case "ObjectValue":
      case "KeywordArgumentsValue":
      case "NamespaceValue": {
        const parts: (RuntimeLike | string)[] = ["{"];
        let first = true;
        for (const [k, x] of v.value as Map<string, RuntimeLike>) {
          parts.push(`${first ? "" : ", "}${pyStrRepr(k)}: `, x);
          first = false;
        }
        parts.push("}");
        for (let i = parts.length - 1; i >= 0; i--) todo.push(parts[i]!);
        break;
      }
      default:
        out += String(v.toString());
    }
  }
  return out;
}

/** The jinja runtime value shape (@huggingface/jinja does not export its classes). */
export interface RuntimeLike {
  type: string;
  value: unknown;
  toString(): string;
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
  // Iterative (containers can nest up to MAX_JSON_DEPTH inside the interpreter's own deep stack): a work
  // list of values with their depth, and literal text (separators, indentation, closing brackets).
  let out = "";
  const todo: ([RuntimeLike, number] | string)[] = [[value, 0]];
  const container = (open: string, close: string, parts: [string, RuntimeLike][], depth: number) => {
    if (parts.length === 0) {
      out += open + close;
      return;
    }
    const inner = indentUnit === null ? "" : `\n${indentUnit.repeat(depth + 1)}`;
    const end = indentUnit === null ? close : `\n${indentUnit.repeat(depth)}${close}`;
    todo.push(end);
    for (let i = parts.length - 1; i >= 0; i--) {
      const [prefix, child] = parts[i]!;
      todo.push([child, depth + 1], `${i === 0 ? open + inner : itemSep + inner}${prefix}`);
    }
  };
  for (let item = todo.pop(); item !== undefined; item = todo.pop()) {
    if (typeof item === "string") {
      out += item;
      continue;
    }
    const [v, depth] = item;
    switch (v.type) {
      case "NullValue":
      case "UndefinedValue":
        out += "null";
        break;
      case "BooleanValue":
        out += v.value ? "true" : "false";
        break;
      case "IntegerValue":
        out += v.toString(); // a big integer's value class prints its literal digits
        break;
      case "FloatValue":
        out += pyFloatRepr(v.value as number);
        break;
      case "StringValue":
        out += str(v.value as string);
        break;
      case "ArrayValue":
      case "TupleValue":
        container(
          "[",
          "]",
          (v.value as RuntimeLike[]).map((x) => ["", x]),
          depth,
        );
        break;
      case "ObjectValue":
      case "NamespaceValue":
      case "KeywordArgumentsValue": {
        let entries = [...(v.value as Map<string, RuntimeLike>).entries()];
        if (options.sortKeys) entries = entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        container(
          "{",
          "}",
          entries.map(([k, x]) => [`${str(k)}${keySep}`, x]),
          depth,
        );
        break;
      }
      default:
        throw new TypeError(`Object of type ${v.type} is not JSON serializable`);
    }
  }
  return out;
}
