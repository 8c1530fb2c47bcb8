// The problem lines of the ConfigError that `fn` throws (fails the test if it throws nothing or another error).
import { ConfigError } from "../../src/errors.js";

export function configProblems(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error("expected a ConfigError");
}
