// A model's Jinja chat template rendered the way transformers' `apply_chat_template` renders it for vLLM:
// @huggingface/jinja (trim_blocks, lstrip_blocks, loop controls built in) with transformers' globals and a
// `tojson` that is Python's json.dumps(ensure_ascii=False) — the library's own differs for integral floats,
// `indent=0` and sort order. Plus vLLM's content-format detection (does the template loop over
// message.content?).
import { Environment, Interpreter, parse, tokenize } from "@huggingface/jinja";
import { KEY_ORDER, PyFloat, PyInt, pyJsonDumps, pyRepr, pyStr, type RuntimeLike } from "./python-json.js";
import { pyStrip, type StripSide } from "./py-strings.js";
import { isQwen3Template, renderQwen3Chat } from "./qwen3-chat-render.js";

/** Thrown by the template's own `raise_exception(...)`: the request is what the template refuses. */
export class TemplateRaise extends Error {
  override name = "TemplateRaise";
}

type Program = ReturnType<typeof parse>;
type Ctor = new (value: unknown) => RuntimeLike;

// The runtime value classes are not exported; take their constructors from values the library makes.
const convert = (v: unknown): RuntimeLike => new Environment().set("_", v);
const ctor = (v: unknown) => convert(v).constructor as Ctor;
const StringValue = ctor("");
const BooleanValue = ctor(true);
const NullValue = ctor(null);
const UndefinedValue = ctor(undefined);
const IntegerValue = ctor(1);
const FloatValue = ctor(1.5);
const ArrayValue = ctor([]);
const ObjectValue = ctor({});
const FunctionValue = ctor(() => undefined) as unknown as new (
  fn: (args: RuntimeLike[]) => RuntimeLike,
) => RuntimeLike;

/** A strip argument as Python reads it: none/None = whitespace, else the characters to strip. */
function stripChars(arg: RuntimeLike | undefined): string | null {
  if (arg === undefined || arg.value === null || arg.value === undefined) return null;
  if (typeof arg.value !== "string") throw new Error("strip arg must be None or str");
  return arg.value;
}

// The library's str.strip/lstrip/rstrip ignore their argument and strip JS whitespace: Qwen3's
// `content.lstrip('\n')` then also eats the spaces Python keeps. Replace them with Python's on every string
// (render is the only user of @huggingface/jinja in kvpick).
const STRING_METHODS: [string, StripSide][] = [
  ["strip", "both"],
  ["lstrip", "left"],
  ["rstrip", "right"],
];
const builtinsGetter = Object.getOwnPropertyDescriptor(StringValue.prototype, "builtins")!.get!;
const patchedBuiltins = new WeakSet<Map<string, RuntimeLike>>();
Object.defineProperty(StringValue.prototype, "builtins", {
  configurable: true,
  get(this: { value: string }) {
    const map = builtinsGetter.call(this) as Map<string, RuntimeLike>;
    if (!patchedBuiltins.has(map)) {
      for (const [name, side] of STRING_METHODS) {
        map.set(
          name,
          new FunctionValue((args) => new StringValue(pyStrip(this.value, stripChars(args[0]), side))),
        );
      }
      patchedBuiltins.add(map);
    }
    return map;
  },
});

// Printing a value (`{{ x }}`, `|string`, `x ~ y`) is Python's str() in Jinja2: floats as repr (`1e+20`,
// `1.0`, `inf`), containers as their repr (`{'a': 1.0}`, not JSON), True/False/None by name. The library
// prints JS-ish text instead, so its value classes print through pyStr. Only kvpick renders with this library
// in the process; the classes are not exported, so their prototypes are patched here, once.
for (const C of [FloatValue, BooleanValue, ArrayValue, ObjectValue]) {
  C.prototype.toString = function (this: RuntimeLike) {
    return pyRepr(this);
  };
}

/** An integer outside ±(2^53−1) from the request: prints and dumps its literal digits. */
class BigIntegerValue extends IntegerValue {
  readonly text: string;
  constructor(n: PyInt) {
    super(n.value);
    this.text = n.text;
  }
  override toString(): string {
    return this.text;
  }
}

interface AstNode {
  type: string;
  value?: unknown;
  callee?: AstNode;
  args?: AstNode[];
}

interface InterpreterInternals {
  evaluate(node: AstNode, env: Environment): RuntimeLike;
  evaluateBinaryExpression(node: AstNode & { operator: { value: string } }, env: Environment): RuntimeLike;
  applyFilter(operand: RuntimeLike, filter: AstNode, env: Environment): RuntimeLike;
  evaluateArguments(args: AstNode[], env: Environment): [RuntimeLike[], Map<string, RuntimeLike>];
}

/** An interpreter whose `tojson` filter is Python's json.dumps (as transformers registers it). */
const BaseInterpreter = Interpreter as unknown as new (
  env: Environment,
) => { run(program: Program): unknown };
class HfInterpreter extends BaseInterpreter {}
const baseFilter = (Interpreter.prototype as unknown as InterpreterInternals).applyFilter;
(HfInterpreter.prototype as unknown as InterpreterInternals).applyFilter = function (
  this: InterpreterInternals,
  operand,
  filter,
  env,
) {
  if (filter.type === "Identifier" && filter.value === "tojson") return new StringValue(pyJsonDumps(operand));
  // Jinja2's trim is Python's str.strip(chars): its whitespace is not JS trim's (\x85 vs \ufeff).
  if (filter.type === "Identifier" && filter.value === "trim" && typeof operand.value === "string") {
    return new StringValue(pyStrip(operand.value));
  }
  if (
    filter.type === "CallExpression" &&
    filter.callee?.type === "Identifier" &&
    filter.callee.value === "trim" &&
    typeof operand.value === "string"
  ) {
    const [args, kw] = this.evaluateArguments(filter.args ?? [], env);
    return new StringValue(pyStrip(operand.value, stripChars(args[0] ?? kw.get("chars"))));
  }
  // Python str() where Jinja2 converts values to text: `|string`, and `|join` over non-string items.
  if (filter.type === "Identifier" && filter.value === "string") return new StringValue(pyStr(operand));
  const joinArgs =
    filter.type === "Identifier" && filter.value === "join"
      ? []
      : filter.type === "CallExpression" &&
          filter.callee?.type === "Identifier" &&
          filter.callee.value === "join"
        ? (filter.args ?? [])
        : null;
  if (joinArgs !== null && operand.type === "ArrayValue") {
    const [args, kw] = this.evaluateArguments(joinArgs, env);
    const sep = args[0] ?? kw.get("d") ?? kw.get("separator");
    if (sep === undefined || sep.type === "StringValue") {
      const items = (operand.value as RuntimeLike[]).map(pyStr);
      return new StringValue(items.join(sep === undefined ? "" : (sep.value as string)));
    }
  }
  if (
    filter.type === "CallExpression" &&
    filter.callee?.type === "Identifier" &&
    filter.callee.value === "tojson"
  ) {
    const [, kw] = this.evaluateArguments(filter.args ?? [], env);
    const indent = kw.get("indent")?.value;
    const seps = kw.get("separators")?.value as RuntimeLike[] | undefined;
    return new StringValue(
      pyJsonDumps(operand, {
        indent: typeof indent === "number" || typeof indent === "string" ? indent : null,
        separators: seps?.length === 2 ? [String(seps[0]!.value), String(seps[1]!.value)] : null,
        sortKeys: kw.get("sort_keys")?.value === true,
        ensureAscii: kw.get("ensure_ascii")?.value === true,
      }),
    );
  }
  return baseFilter.call(this, operand, filter, env);
};

// `x ~ y` is str(x) + str(y) in Jinja2; the library concatenates the JS values (`1.0 ~ ""` → "1").
const baseBinary = (Interpreter.prototype as unknown as InterpreterInternals).evaluateBinaryExpression;
(HfInterpreter.prototype as unknown as InterpreterInternals).evaluateBinaryExpression = function (
  this: InterpreterInternals,
  node,
  env,
) {
  if (node.operator.value !== "~") return baseBinary.call(this, node, env);
  const left = this.evaluate((node as unknown as { left: AstNode }).left, env);
  const right = this.evaluate((node as unknown as { right: AstNode }).right, env);
  return new StringValue(pyStr(left) + pyStr(right));
};

// `{{ x }}` with x None prints "None" in Jinja2 (an undefined x prints ""); the library prints nothing for
// both. Statements (set, if, for, macro, …) also evaluate to null in the library and must stay silent.
const STATEMENTS = new Set([
  "Program",
  "If",
  "For",
  "Break",
  "Continue",
  "Set",
  "Macro",
  "Comment",
  "FilterStatement",
  "CallStatement",
]);
(HfInterpreter.prototype as unknown as { evaluateBlock: unknown }).evaluateBlock = function (
  this: InterpreterInternals,
  statements: AstNode[],
  env: Environment,
): RuntimeLike {
  let result = "";
  for (const statement of statements) {
    const v = this.evaluate(statement, env);
    if (v.type === "NullValue") {
      if (!STATEMENTS.has(statement.type)) result += "None";
    } else if (v.type !== "UndefinedValue") result += v.toString();
  }
  return new StringValue(result);
};

/**
 * Request values (parseRequestJson shapes: PyFloat, PyInt, KEY_ORDER; or Maps) → jinja runtime values, as
 * Python sees them. Iterative: a container is made empty and filled as its children are converted, so a
 * value nested MAX_JSON_DEPTH deep costs no stack.
 */
function toRuntime(root: unknown): RuntimeLike {
  const pending: [unknown, (r: RuntimeLike) => void][] = [];
  const shallow = (v: unknown): RuntimeLike => {
    if (typeof v === "string") return new StringValue(v);
    if (typeof v === "number") return Number.isInteger(v) ? new IntegerValue(v) : new FloatValue(v);
    if (Array.isArray(v)) {
      const items: RuntimeLike[] = new Array(v.length);
      for (let i = 0; i < v.length; i++) {
        pending.push([
          v[i],
          (r) => {
            items[i] = r;
          },
        ]);
      }
      return new ArrayValue(items);
    }
    if (v instanceof PyFloat) return new FloatValue(v.value);
    if (v instanceof PyInt) return new BigIntegerValue(v);
    if (typeof v === "object" && v !== null) {
      const entries: [string, unknown][] =
        v instanceof Map
          ? [...v].map(([k, x]) => [String(k), x])
          : ((v as { [KEY_ORDER]?: string[] })[KEY_ORDER] ?? Object.keys(v)).map((k) => [
              k,
              (v as Record<string, unknown>)[k],
            ]);
      const map = new Map<string, RuntimeLike>();
      for (const [k, x] of entries) {
        map.set(k, UNSET); // the key's place now; its value once converted
        pending.push([x, (r) => map.set(k, r)]);
      }
      return new ObjectValue(map);
    }
    if (typeof v === "boolean") return new BooleanValue(v);
    if (v === null) return new NullValue(null);
    if (v === undefined) return new UndefinedValue(undefined);
    return convert(v); // functions
  };
  const result = shallow(root);
  for (let p = pending.pop(); p !== undefined; p = pending.pop()) p[1](shallow(p[0]));
  return result;
}
const UNSET = new UndefinedValue(undefined);

function range(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new Error("range() step must not be zero");
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS = "January February March April May June July August September October November December".split(
  " ",
);

/** Python's datetime.now().strftime for the codes chat templates use (C locale names). */
export function strftimeNow(format: string, now = new Date()): string {
  const p2 = (n: number) => String(n).padStart(2, "0");
  return format.replace(/%[a-zA-Z%]/g, (code) => {
    switch (code) {
      case "%Y":
        return String(now.getFullYear());
      case "%y":
        return p2(now.getFullYear() % 100);
      case "%m":
        return p2(now.getMonth() + 1);
      case "%d":
        return p2(now.getDate());
      case "%e":
        return String(now.getDate()).padStart(2, " ");
      case "%B":
        return MONTHS[now.getMonth()]!;
      case "%b":
        return MONTHS[now.getMonth()]!.slice(0, 3);
      case "%A":
        return DAYS[now.getDay()]!;
      case "%a":
        return DAYS[now.getDay()]!.slice(0, 3);
      case "%H":
        return p2(now.getHours());
      case "%I":
        return p2(now.getHours() % 12 || 12);
      case "%p":
        return now.getHours() < 12 ? "AM" : "PM";
      case "%M":
        return p2(now.getMinutes());
      case "%S":
        return p2(now.getSeconds());
      case "%%":
        return "%";
      default:
        return code;
    }
  });
}

const GLOBALS: Record<string, unknown> = {
  true: true,
  false: false,
  none: null,
  True: true,
  False: false,
  None: null,
  range,
  strftime_now: (format: string) => strftimeNow(format),
  raise_exception: (message: unknown) => {
    throw new TemplateRaise(String(message));
  },
};

export class ChatTemplate {
  readonly source: string;
  /** vLLM's detected content format: "openai" when the template loops over message content parts. */
  readonly contentFormat: "string" | "openai";
  readonly #program: Program;
  /** The template written out in code (qwen3-chat-render.ts) for the contexts it covers, else null. */
  readonly #direct: ((context: Record<string, unknown>) => string | null) | null;

  constructor(source: string) {
    this.source = source;
    this.#program = parse(tokenize(source, { lstrip_blocks: true, trim_blocks: true }));
    this.contentFormat = loopsOverContent(this.#program) ? "openai" : "string";
    this.#direct = isQwen3Template(source) ? renderQwen3Chat : null;
  }

  /** Whether some contexts skip the interpreter (the template is one qwen3-chat-render.ts reproduces). */
  get hasDirectRender(): boolean {
    return this.#direct !== null;
  }

  /** Renders with transformers' globals; `context` holds messages, tools, special tokens, kwargs. */
  render(context: Record<string, unknown>): string {
    return this.#direct?.(context) ?? this.interpret(context);
  }

  /** `render` through the Jinja interpreter always (the reference the direct renderer is tested against). */
  interpret(context: Record<string, unknown>): string {
    const env = new Environment();
    for (const [k, v] of Object.entries(GLOBALS)) env.set(k, v);
    for (const [k, v] of Object.entries(context)) env.setVariable(k, toRuntime(v) as never);
    // The library resolves an undefined variable (`enable_thinking is defined`) by throwing and catching an
    // Error; capturing its stack through the deep interpreter recursion cost ~2/3 of a render. Render is
    // synchronous, so no other code sees the limit.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return (new HfInterpreter(env).run(this.#program) as RuntimeLike).value as string;
    } finally {
      Error.stackTraceLimit = limit;
    }
  }
}

/**
 * vLLM `_detect_content_format`: a template is "openai" when some `for` loop iterates over a message's
 * `content` (`message.content`, `message['content']`, or a variable set from one of those).
 */
function loopsOverContent(program: Program): boolean {
  const contentVars = new Set<string>();
  const iterables: unknown[] = [];
  const isContent = (node: unknown): boolean => {
    const n = node as {
      type?: string;
      property?: { type?: string; value?: unknown };
      operand?: unknown;
      value?: unknown;
    };
    if (n?.type === "FilterExpression") return isContent(n.operand);
    if (n?.type === "MemberExpression") return n.property?.value === "content";
    if (n?.type === "Identifier") return contentVars.has(n.value as string);
    return false;
  };
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) {
      node.forEach(walk);
      return;
    }
    if (typeof node !== "object" || node === null) return;
    const n = node as Record<string, unknown>;
    if (n.type === "Set" && isContent(n.value) && (n.assignee as { type?: string })?.type === "Identifier") {
      contentVars.add((n.assignee as { value: string }).value);
    }
    if (n.type === "For") iterables.push(n.iterable);
    for (const [k, child] of Object.entries(n)) if (k !== "type") walk(child);
  };
  walk(program);
  return iterables.some(isContent);
}
