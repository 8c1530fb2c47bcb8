// Restores lockfile entries for other platforms' optional packages. This workplace's npm mirror answers 404
// for them, so `npm install` here writes a lock without them and `npm ci` then refuses the lock as out of
// sync. Run `node .ci/fix-lock.mjs` after any `npm install`; it adds `{version, optional, os, cpu[, libc]}`
// entries (skipped by npm ci on non-matching platforms), derived from each package's name.
import { execSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";

const lockPath = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(lockPath, "utf8"));
const wanted = new Map();
for (const meta of Object.values(lock.packages)) {
  for (const [name, spec] of Object.entries(meta.optionalDependencies ?? {})) wanted.set(name, spec);
}
let added = 0;
for (const [name, spec] of wanted) {
  const key = `node_modules/${name}`;
  if (lock.packages[key] !== undefined) continue;
  const leaf = name.split("/").pop();
  const os = ["android", "darwin", "linux", "win32", "freebsd", "openbsd"].find((o) => leaf.includes(o));
  const cpu = ["arm64", "x64", "arm", "ia32", "ppc64", "s390x"].find((c) => new RegExp(`-${c}(-|$)`).test(leaf));
  if (os === undefined || cpu === undefined) continue; // not a platform package: leave it to npm
  const entry = { version: spec.replace(/^[\^~=]/, ""), optional: true, os: [os], cpu: [cpu] };
  if (os === "linux") entry.libc = [leaf.includes("musl") ? "musl" : "glibc"];
  lock.packages[key] = entry;
  added++;
}
const sorted = Object.fromEntries(
  Object.entries(lock.packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : a > b ? 1 : 0)),
);
lock.packages = sorted;
writeFileSync(lockPath, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`fix-lock: added ${added} platform entries`);
if (process.argv.includes("--check")) execSync("npm ci --dry-run --no-audit --no-fund", { stdio: "inherit" });
