import { describe, expect, it } from "vitest";
import { ChatTemplate } from "./chat-template.js";
import { PyFloat, parseJsonExact, pyFloatRepr } from "./python-json.js";

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

describe("parseJsonExact (Python json.loads shapes)", () => {
  it("keeps integral floats as floats and key order as written", () => {
    const v = parseJsonExact('{"b": 20.0, "10": 1, "2": [1e2, 2.5, -0, "é"], "a": null}') as Map<
      string,
      unknown
    >;
    expect([...v.keys()]).toEqual(["b", "10", "2", "a"]);
    expect(v.get("b")).toEqual(new PyFloat(20));
    expect(v.get("2")).toEqual([new PyFloat(100), 2.5, -0, "é"]);
  });
  it("rejects invalid JSON", () => {
    for (const bad of ["{", "{'a': 1}", "[1,]", "01", '"\u0001"', "1 2"])
      expect(() => parseJsonExact(bad)).toThrow(SyntaxError);
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
    const x = parseJsonExact('{"t": 20.0, "2": 1, "1": 0.5}');
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
