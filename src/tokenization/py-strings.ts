// Python's str.strip / lstrip / rstrip, which chat templates call (`content | trim`, `.strip('\n')`) and
// which differ from JS trim: Python's whitespace (str.isspace) includes \x1c-\x1f and \x85 but not \ufeff,
// and an argument strips exactly those characters (code points), never whitespace.

/** Characters for which Python's str.isspace() is true. */
const PY_WS = new Set(
  Array.from(
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000",
  ),
);

export type StripSide = "both" | "left" | "right";

/** `s.strip(chars)` (side "both"), `lstrip` ("left") or `rstrip` ("right"); chars null = whitespace. */
export function pyStrip(s: string, chars: string | null = null, side: StripSide = "both"): string {
  const set = chars === null ? PY_WS : new Set(Array.from(chars));
  let start = 0;
  let end = s.length;
  if (side !== "right") {
    while (start < end) {
      const cp = s.codePointAt(start)!;
      const ch = String.fromCodePoint(cp);
      if (!set.has(ch)) break;
      start += ch.length;
    }
  }
  if (side !== "left") {
    while (end > start) {
      const low = s.charCodeAt(end - 1);
      // A trailing low surrogate belongs to a pair: take the whole code point.
      const width = low >= 0xdc00 && low <= 0xdfff && end - 2 >= start ? 2 : 1;
      const ch = s.slice(end - width, end);
      if (!set.has(ch)) break;
      end -= width;
    }
  }
  return s.slice(start, end);
}
