import { describe, expect, it } from "vitest";
import { ChatTemplate } from "./chat-template.js";
import {
  JsonError,
  KEY_ORDER,
  MAX_JSON_DEPTH,
  orderedEntries,
  PyFloat,
  PyInt,
  parseJsonLossless,
  parseRequestJson,
  pyFloatRepr,
} from "./python-json.js";

describe("pyFloatRepr (Python repr(float))", () => {
  const cases: [number, string][] = [
    [20, "20.0"],
    [0.5, "0.5"],
    [-0, "-0.0"],
    [0, "0.0"],
    [1e16, "1e+16"],
    [1.5e16, "1.5e+16"],
    [123456789012345.0, "123456789012345.0"],
    [0.0001, "0.0001"],
    [0.00001, "1e-05"],
    [1.25e-7, "1.25e-07"],
    [1e22, "1e+22"],
    [-3.5, "-3.5"],
    [0.1 + 0.2, "0.30000000000000004"],
    [Number.NaN, "NaN"],
  ];
  for (const [v, s] of cases) it(`${v} → ${s}`, () => expect(pyFloatRepr(v)).toBe(s));
});

describe("parseRequestJson (Python json.loads shapes)", () => {
  it("keeps integral floats as floats, big integers as digits and key order as written", () => {
    const v = parseRequestJson(
      '{"b": 20.0, "10": 1, "2": [1e2, 2.5, -0, "é", 12345678901234567890], "a": null}',
    ) as Record<string, unknown>;
    expect(orderedEntries(v).map(([k]) => k)).toEqual(["b", "10", "2", "a"]);
    expect(v.b).toEqual(new PyFloat(20));
    expect(v["2"]).toEqual([new PyFloat(100), 2.5, -0, "é", new PyInt("12345678901234567890")]);
  });
  it("reads NaN and ±Infinity as Python does, and overflowing floats as infinity", () => {
    expect(parseRequestJson("[NaN, Infinity, -Infinity, 1e400]")).toEqual([
      new PyFloat(Number.NaN),
      new PyFloat(Number.POSITIVE_INFINITY),
      new PyFloat(Number.NEGATIVE_INFINITY),
      new PyFloat(Number.POSITIVE_INFINITY),
    ]);
  });
  it("gives plain JS values (no key order) when nothing would render differently", () => {
    const v = parseRequestJson('{"a": [1, 2.5, "x"], "b": {"c": true}}') as Record<string, unknown>;
    expect(v).toEqual({ a: [1, 2.5, "x"], b: { c: true } });
    expect(KEY_ORDER in v).toBe(false);
  });
  it("makes __proto__ an own key, as JSON.parse does", () => {
    const v = parseJsonLossless('{"__proto__": {"x": 1}, "0": 1}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(orderedEntries(v)).toEqual([
      ["__proto__", { x: 1 }],
      ["0", 1],
    ]);
  });
  it("keeps the first position of a duplicated key and its last value", () => {
    const v = parseJsonLossless('{"5": 1, "a": 2, "5": 3}') as Record<string, unknown>;
    expect(orderedEntries(v)).toEqual([
      ["5", 3],
      ["a", 2],
    ]);
  });
  it("rejects invalid JSON", () => {
    for (const bad of ["{", "{'a': 1}", "[1,]", "01", '"\u0001"', '"a\\x"', "1 2", '{"a" 1}', "[1 2]", ""])
      expect(() => parseJsonLossless(bad), bad).toThrow(JsonError);
  });
  it("bounds nesting on both paths without recursion", () => {
    for (const open of ["[", '{"a":']) {
      const close = open === "[" ? "]" : "}";
      const nest = (depth: number, leaf: string) => open.repeat(depth) + leaf + close.repeat(depth);
      const deep = nest(100_000, "1");
      expect(() => parseRequestJson(nest(MAX_JSON_DEPTH, "1"))).not.toThrow();
      expect(() => parseRequestJson(nest(MAX_JSON_DEPTH, "1.0"))).not.toThrow();
      expect(() => parseRequestJson(nest(MAX_JSON_DEPTH + 1, "1"))).toThrow(JsonError);
      expect(() => parseRequestJson(deep)).toThrow(/nested deeper than 4096 levels/);
      expect(() => parseRequestJson(nest(100_000, "1.0"))).toThrow(/nested deeper than 4096 levels/);
      expect(() => parseJsonLossless(deep)).toThrow(/nested deeper than 4096 levels/);
    }
  });
});

describe("tojson filter (transformers: json.dumps(ensure_ascii=False))", () => {
  const render = (tpl: string, ctx: Record<string, unknown>) => new ChatTemplate(tpl).render(ctx);
  it("does not escape non-ASCII and uses Python separators", () => {
    expect(render("{{ x | tojson }}", { x: { city: "Zürich 東京 😀", n: [1, 2] } })).toBe(
      '{"city": "Zürich 東京 😀", "n": [1, 2]}',
    );
  });
  it("prints integral floats as floats and keeps key order", () => {
    const x = parseRequestJson('{"t": 20.0, "2": 1, "1": 0.5}');
    expect(render("{{ x | tojson }}", { x })).toBe('{"t": 20.0, "2": 1, "1": 0.5}');
  });
  it("supports indent, sort_keys, separators and ensure_ascii like Python", () => {
    const x = { b: [1, { c: "é" }], a: {} };
    expect(render("{{ x | tojson(indent=2) }}", { x })).toBe(
      '{\n  "b": [\n    1,\n    {\n      "c": "é"\n    }\n  ],\n  "a": {}\n}',
    );
    expect(render("{{ x | tojson(sort_keys=true) }}", { x })).toBe('{"a": {}, "b": [1, {"c": "é"}]}');
    expect(render('{{ x | tojson(separators=(",", ":")) }}', { x })).toBe('{"b":[1,{"c":"é"}],"a":{}}');
    expect(render("{{ x | tojson(ensure_ascii=true) }}", { x: "é😀\n" })).toBe('"\\u00e9\\ud83d\\ude00\\n"');
  });
});
