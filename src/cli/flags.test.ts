import { describe, expect, it } from "vitest";
import { FlagError, parseFlags } from "./flags.js";

const specs = {
  "grpc-port": { kind: "int", help: "" },
  "secure-serving": { kind: "bool", help: "" },
  endpoints: { kind: "list", help: "" },
  "hash-seed": { kind: "string", help: "" },
} as const;

describe("parseFlags", () => {
  it("accepts --name=value, --name value, bare booleans and --flag=false", () => {
    const p = parseFlags(
      [
        "--grpc-port=9002",
        "--hash-seed",
        "42",
        "--secure-serving=false",
        "--endpoints",
        "a:1,b:2",
        "--endpoints=c:3",
        "file.json",
      ],
      specs,
    );
    expect(p.values).toEqual({
      "grpc-port": 9002,
      "hash-seed": "42",
      "secure-serving": false,
      endpoints: ["a:1", "b:2", "c:3"],
    });
    expect(p.positionals).toEqual(["file.json"]);
    expect(parseFlags(["--secure-serving"], specs).values["secure-serving"]).toBe(true);
  });

  it("names the bad flag", () => {
    expect(() => parseFlags(["--grpc-port=x"], specs)).toThrow(
      new FlagError('--grpc-port: expected an integer, got "x"'),
    );
    expect(() => parseFlags(["--nope"], specs)).toThrow(/unknown flag --nope/);
    expect(() => parseFlags(["--hash-seed"], specs)).toThrow(/--hash-seed: missing value/);
    expect(() => parseFlags(["--secure-serving=yes"], specs)).toThrow(/expected true or false/);
  });

  it("treats - as a positional (stdin)", () => {
    expect(parseFlags(["-"], specs).positionals).toEqual(["-"]);
  });
});
