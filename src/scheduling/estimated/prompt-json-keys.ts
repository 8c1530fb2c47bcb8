// Approximate prefix keys of a prompt value without serialising it: the keys GIE computes over the prompt's
// JSON text (chat messages as JSON), produced by walking the value iteratively (an explicit stack, so a
// 100,000-deep client value cannot overflow the call stack) and feeding the JSON text piece by piece to the
// incremental hasher, stopping once the keys are complete: a 5 MB conversation costs what its first
// maxBlocks × blockChars characters cost. Long strings (a shared system prompt) are keyed once: the hasher
// state after one, from a given state, is cached (PieceCache), as the token cache does for token ids.
import type { ApproxKeyHasher, ApproxKeyState } from "./approx-prefix-keys.js";

/** Strings shorter than this are hashed directly (a cache lookup would cost about as much). */
const CACHE_MIN_CHARS = 256;

interface Transition {
  readonly after: ApproxKeyState;
  /** Keys completed while feeding the piece. */
  readonly keys: Float64Array;
}

/**
 * Hasher transitions over long JSON strings: (hasher shape and state before, string) → state after and the
 * keys completed on the way. Bounded by the characters of the strings it holds; it is
 * simply emptied when full (a miss costs one direct hash).
 */
export class PieceCache {
  readonly #maxChars: number;
  #chars = 0;
  readonly #byState = new Map<string, Map<string, Transition>>();

  constructor(maxChars = 4 * 1024 * 1024) {
    this.#maxChars = maxChars;
  }

  get(state: string, piece: string): Transition | undefined {
    return this.#byState.get(state)?.get(piece);
  }

  set(state: string, piece: string, t: Transition): void {
    if (piece.length > this.#maxChars) return;
    if (this.#chars + piece.length > this.#maxChars) {
      this.#byState.clear();
      this.#chars = 0;
    }
    let m = this.#byState.get(state);
    if (m === undefined) {
      m = new Map();
      this.#byState.set(state, m);
    }
    m.set(piece, t);
    this.#chars += piece.length;
  }
}

type Frame =
  | { readonly kind: "array"; readonly value: readonly unknown[]; i: number }
  | {
      readonly kind: "object";
      readonly value: Record<string, unknown>;
      readonly keys: string[];
      i: number;
      n: number;
    };

/** Feeds the JSON text of `value` (exactly JSON.stringify's) to `h` until it is full. */
export function feedJson(h: ApproxKeyHasher, value: unknown, cache: PieceCache | null): void {
  const stack: Frame[] = [];
  let next: unknown = value;
  let pending = true; // `next` is a value to write
  while (!h.full) {
    if (pending) {
      pending = false;
      const v = toJsonValue(next);
      if (typeof v === "string") feedString(h, v, cache);
      else if (typeof v === "number") h.feed(Number.isFinite(v) ? String(v) : "null");
      else if (typeof v === "boolean") h.feed(v ? "true" : "false");
      else if (v === null || typeof v !== "object")
        h.feed("null"); // undefined in arrays, bigint: as JSON's null
      else if (Array.isArray(v)) {
        h.feed("[");
        stack.push({ kind: "array", value: v, i: 0 });
      } else {
        h.feed("{");
        const rec = v as Record<string, unknown>;
        stack.push({ kind: "object", value: rec, keys: Object.keys(rec), i: 0, n: 0 });
      }
      continue;
    }
    const top = stack[stack.length - 1];
    if (top === undefined) return;
    if (top.kind === "array") {
      if (top.i >= top.value.length) {
        h.feed("]");
        stack.pop();
        continue;
      }
      if (top.i > 0) h.feed(",");
      const item = top.value[top.i++];
      next = typeof item === "function" || typeof item === "symbol" ? null : item;
      pending = true;
    } else {
      let key: string | undefined;
      let item: unknown;
      while (top.i < top.keys.length) {
        const k = top.keys[top.i++]!;
        const x = toJsonValue(top.value[k]);
        if (x === undefined || typeof x === "function" || typeof x === "symbol") continue; // JSON skips these
        key = k;
        item = x;
        break;
      }
      if (key === undefined) {
        h.feed("}");
        stack.pop();
        continue;
      }
      if (top.n++ > 0) h.feed(",");
      h.feed(JSON.stringify(key));
      h.feed(":");
      next = item;
      pending = true;
    }
  }
}

/** JSON.stringify's toJSON step (Date and friends); plain parsed values pass through. */
function toJsonValue(v: unknown): unknown {
  if (typeof v === "object" && v !== null && typeof (v as { toJSON?: unknown }).toJSON === "function")
    return (v as { toJSON(): unknown }).toJSON();
  return v;
}

function feedString(h: ApproxKeyHasher, s: string, cache: PieceCache | null): void {
  // Only the first `remaining` characters of the JSON text can matter. Escaping never shortens text, and one
  // extra character keeps a surrogate pair at the cut whole, so the escaped cut is the escaped text's prefix.
  const rem = h.remaining;
  const piece = s.length > rem + 1 ? s.slice(0, rem + 1) : s;
  if (cache === null || piece.length < CACHE_MIN_CHARS) {
    h.feed(JSON.stringify(piece));
    return;
  }
  const before = h.state();
  // The shape is part of the key, so one cache may serve hashers of any shape.
  const stateKey = `${h.blockChars}/${h.maxBlocks}:${before.a}:${before.b}:${before.keys}:${before.pos}`;
  const hit = cache.get(stateKey, piece);
  if (hit !== undefined) {
    h.out.set(hit.keys, before.keys);
    h.restore(hit.after);
    return;
  }
  h.feed(JSON.stringify(piece));
  const after = h.state();
  cache.set(stateKey, piece, { after, keys: h.out.slice(before.keys, after.keys) });
}
