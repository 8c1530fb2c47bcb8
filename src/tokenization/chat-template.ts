// A model's Jinja chat template rendered the way transformers' `apply_chat_template` renders it for vLLM:
// @huggingface/jinja (trim_blocks, lstrip_blocks, loop controls built in) with transformers' globals and a
// `tojson` that is Python's json.dumps(ensure_ascii=False) — the library's own differs for integral floats,
// `indent=0` and sort order. Plus vLLM's content-format detection (does the template loop over
// message.content?).
import { Environment, Interpreter, parse, tokenize } from "@huggingface/jinja";
import { PyFloat, pyJsonDumps, type RuntimeLike } from "./python-json.js";
import { pyStrip, type StripSide } from "./py-strings.js";

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

interface AstNode {
  type: string;
  value?: unknown;
  callee?: AstNode;
  args?: AstNode[];
}

interface InterpreterInternals {
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

/** JS values → jinja runtime values, keeping PyFloat (integral floats) and Map key order. */
function toRuntime(v: unknown): RuntimeLike {
  if (typeof v === "string") return new StringValue(v);
  if (v instanceof PyFloat) return new FloatValue(v.value);
  if (typeof v === "number") return Number.isInteger(v) ? new IntegerValue(v) : new FloatValue(v);
  if (Array.isArray(v)) return new ArrayValue(v.map(toRuntime));
  if (v instanceof Map) return new ObjectValue(new Map([...v].map(([k, x]) => [String(k), toRuntime(x)])));
  if (typeof v === "object" && v !== null) {
    return new ObjectValue(new Map(Object.entries(v).map(([k, x]) => [k, toRuntime(x)])));
  }
  if (typeof v === "string") return new StringValue(v);
  if (typeof v === "boolean") return new BooleanValue(v);
  if (v === null) return new NullValue(null);
  if (v === undefined) return new UndefinedValue(undefined);
  return convert(v); // functions
}

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

  constructor(source: string) {
    this.source = source;
    this.#program = parse(tokenize(source, { lstrip_blocks: true, trim_blocks: true }));
    this.contentFormat = loopsOverContent(this.#program) ? "openai" : "string";
  }

  /** Renders with transformers' globals; `context` holds messages, tools, special tokens, kwargs. */
  render(context: Record<string, unknown>): string {
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
