// One zod issue as one config problem line, named by its field path. Its own module so the plugin registry
// can use it without importing the loader (which imports the plugin registry for foreign config formats).
import type { z } from "zod";

/** `tokenizer.blockSize: expected integer 1..1024, got "sixty"` */
export function formatIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.length ? issue.path.map(String).join(".") : "(root)";
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((k) => `${path === "(root)" ? k : `${path}.${k}`}: unknown field`).join("; ");
  }
  const got = "input" in issue ? `, got ${describe(issue.input)}` : "";
  return `${path}: ${issue.message}${got}`;
}

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  const json = JSON.stringify(value);
  return json.length > 60 ? `${json.slice(0, 57)}...` : json;
}
