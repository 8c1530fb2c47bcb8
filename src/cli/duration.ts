// Go-style durations as GIE's flags take them.
import { FlagError } from "./flags.js";

/** Go-style durations as GIE's flags take them: "50ms", "2s", "1m"; a bare number is milliseconds. */
export function durationMs(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (m === null) throw new FlagError(`--${flag}: expected a duration like 50ms or 2s, got "${text}"`);
  const n = Number(m[1]);
  return Math.round(m[2] === "s" ? n * 1000 : m[2] === "m" ? n * 60_000 : n);
}
