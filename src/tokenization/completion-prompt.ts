// The `prompt` of a /v1/completions body: text to tokenize (add_special_tokens=true), or token ids vLLM uses as is.
import { badRequest } from "../errors.js";
import { PyFloat } from "./python-json.js";

const U32_MAX = 2 ** 32 - 1;
const isId = (n: unknown): n is number =>
  typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= U32_MAX;
// pydantic's lax `int` accepts an integral float (`7.0`), which the body parser keeps as a PyFloat.
const isTokenId = (v: unknown): boolean => isId(v) || (v instanceof PyFloat && isId(v.value));
const idOf = (v: unknown): number => (v instanceof PyFloat ? v.value : (v as number));

/**
 * A completions `prompt`: a string, or token ids used as is. A batch (array of strings or of id arrays)
 * is routed by its first prompt: one request goes to one pod, and the batch shares the pod's cache.
 */
export function completionPrompt(prompt: unknown): string | Uint32Array {
  if (typeof prompt === "string") return prompt;
  if (!Array.isArray(prompt) || prompt.length === 0) {
    throw badRequest("prompt: expected a string, an array of token ids, or a non-empty batch of those");
  }
  if (prompt.every(isTokenId)) return Uint32Array.from(prompt, idOf);
  const first: unknown = prompt[0];
  if (typeof first === "string") return first;
  if (Array.isArray(first) && first.length > 0 && first.every(isTokenId))
    return Uint32Array.from(first, idOf);
  throw badRequest("prompt: expected a string, an array of token ids, or a non-empty batch of those");
}
