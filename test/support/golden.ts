// Golden vectors: shared/vectors beside the repository (the team's source of truth) when present, else the
// copy committed under test/fixtures/vectors. Never skipped: a missing file fails the test.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (the directory holding package.json), from source or compiled files. */
export const repoRoot: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("package.json not found above test/support");
    dir = up;
  }
  return dir;
})();

export function vectorPath(name: string): string {
  const shared = join(repoRoot, "..", "shared", "vectors", name);
  return existsSync(shared) ? shared : join(repoRoot, "test", "fixtures", "vectors", name);
}

export function loadVector<T = unknown>(name: string): T {
  return JSON.parse(readFileSync(vectorPath(name), "utf8")) as T;
}
