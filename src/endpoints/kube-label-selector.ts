// Kubernetes label selectors: the `--endpoint-selector` text (`app=vllm,tier in (a,b),!canary`), an
// InferencePool's `matchLabels` / `matchExpressions`, and a matcher. The API server filters the pod watch by
// the selector string; discovery re-checks labels client-side so a relabelled pod leaves the pool even when a
// proxy or an old API server replays it as MODIFIED instead of DELETED.

export type Operator = "=" | "!=" | "in" | "notin" | "exists" | "!exists";

export interface Requirement {
  readonly key: string;
  readonly op: Operator;
  /** One value for `=` / `!=`, the set for `in` / `notin`, none for the existence checks. */
  readonly values: readonly string[];
}

/** `metav1.LabelSelector` as JSON. */
export interface LabelSelectorObject {
  matchLabels?: Record<string, string> | null;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] | null }> | null;
}

export class LabelSelectorError extends Error {
  override name = "LabelSelectorError";
}

// Label keys: optional DNS prefix + "/" + name; values may be empty. Loose on purpose: the API server is the
// authority, this only rejects text that cannot be a selector at all.
const KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

/** Parses selector text (the API server's `labelSelector` syntax). An empty text selects everything. */
export function parseSelector(text: string): Requirement[] {
  const out: Requirement[] = [];
  for (const part of splitTopLevel(text)) {
    const s = part.trim();
    if (s === "") continue;
    let m = /^(!?)\s*([^\s=!(),]+)$/.exec(s);
    if (m !== null) {
      out.push(req(m[2]!, m[1] === "!" ? "!exists" : "exists", []));
      continue;
    }
    m = /^([^\s=!(),]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(s);
    if (m !== null) {
      const values = m[3]!
        .split(",")
        .map((v) => v.trim())
        .filter((v) => v !== "");
      out.push(req(m[1]!, m[2] as Operator, values));
      continue;
    }
    m = /^([^\s=!(),]+)\s*(==|=|!=)\s*([^\s=!(),]*)$/.exec(s);
    if (m !== null) {
      out.push(req(m[1]!, m[2] === "!=" ? "!=" : "=", [m[3]!]));
      continue;
    }
    throw new LabelSelectorError(`cannot parse label selector term "${s}"`);
  }
  return out;
}

/** An InferencePool / metav1 selector → requirements. */
export function selectorFromObject(sel: LabelSelectorObject): Requirement[] {
  const out: Requirement[] = [];
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) out.push(req(k, "=", [String(v)]));
  for (const e of sel.matchExpressions ?? []) {
    const op = (
      { In: "in", NotIn: "notin", Exists: "exists", DoesNotExist: "!exists" } as Record<string, Operator>
    )[e.operator];
    if (op === undefined) throw new LabelSelectorError(`unknown selector operator "${e.operator}"`);
    out.push(req(e.key, op, e.values ?? []));
  }
  return out;
}

/** Requirements → the `labelSelector` query text (canonical: sorted, so equal selectors compare equal). */
export function selectorString(reqs: readonly Requirement[]): string {
  return reqs
    .map((r) => {
      switch (r.op) {
        case "=":
        case "!=":
          return `${r.key}${r.op}${r.values[0] ?? ""}`;
        case "in":
        case "notin":
          return `${r.key} ${r.op} (${[...r.values].sort().join(",")})`;
        case "exists":
          return r.key;
        default:
          return `!${r.key}`;
      }
    })
    .sort()
    .join(",");
}

export function matchesLabels(
  reqs: readonly Requirement[],
  labels: Record<string, string> | undefined,
): boolean {
  const l = labels ?? {};
  for (const r of reqs) {
    const has = Object.hasOwn(l, r.key);
    const v = l[r.key];
    switch (r.op) {
      case "=":
        if (v !== r.values[0]) return false;
        break;
      case "!=":
        if (v === r.values[0]) return false;
        break;
      case "in":
        if (!has || !r.values.includes(v!)) return false;
        break;
      case "notin":
        if (has && r.values.includes(v!)) return false;
        break;
      case "exists":
        if (!has) return false;
        break;
      case "!exists":
        if (has) return false;
        break;
    }
  }
  return true;
}

function req(key: string, op: Operator, values: string[]): Requirement {
  if (!KEY.test(key)) throw new LabelSelectorError(`invalid label key "${key}"`);
  for (const v of values) if (!VALUE.test(v)) throw new LabelSelectorError(`invalid label value "${v}"`);
  if ((op === "in" || op === "notin") && values.length === 0)
    throw new LabelSelectorError(`"${key} ${op}" needs at least one value`);
  return { key, op, values };
}

/** Splits on commas outside parentheses (`a in (x,y),b=c` → two terms). */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "(") depth++;
    else if (c === ")") depth--;
    else if (c === "," && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}
