// Python's own rendering of tricky request values (test/fixtures/python-json/golden.json, written by
// oracle.py there with CPython's json and Jinja2 as transformers configures it): each value is read through
// the request body parser and rendered by kvpick's chat template runtime; every output is byte-identical.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../test/support/golden.js";
import { ChatTemplate } from "./chat-template.js";
import { parseRequestJson } from "./python-json.js";

interface ValueCase {
  name: string;
  json: string;
  rendered: Record<string, string>;
}

const golden = JSON.parse(
  readFileSync(join(repoRoot, "test", "fixtures", "python-json", "golden.json"), "utf8"),
) as { values: ValueCase[] };

// The oracle's templates, by name (kept in step with oracle.py's TEMPLATES, DICT_TEMPLATES, LIST_TEMPLATES).
const TEMPLATES: Record<string, string> = {
  tojson: "{{ x | tojson }}",
  "tojson indent": "{{ x | tojson(indent=2) }}",
  "tojson sort_keys": "{{ x | tojson(sort_keys=true) }}",
  "tojson separators": '{{ x | tojson(separators=(",", ":")) }}',
  print: "{{ x }}",
  "string filter": "{{ x | string }}",
  tilde: "{{ 'v=' ~ x ~ ';' }}",
  items: "{% for k, v in x.items() %}{{ k }}={{ v }};{% endfor %}",
  join: "{{ x | join(',') }}",
};
const compiled = new Map(Object.entries(TEMPLATES).map(([k, t]) => [k, new ChatTemplate(t)]));

describe("request values render as Python renders them (oracle.py goldens)", () => {
  it("has the oracle's cases", () => expect(golden.values.length).toBeGreaterThanOrEqual(25));
  for (const c of golden.values) {
    it(c.name, () => {
      const body = parseRequestJson(`{"model": "m", "x": ${c.json}}`) as Record<string, unknown>;
      for (const [name, expected] of Object.entries(c.rendered)) {
        const template = compiled.get(name);
        expect(template, `template ${name}`).toBeDefined();
        expect(template!.render({ x: body.x }), `${name} of ${c.json}`).toBe(expected);
      }
    });
  }
});
