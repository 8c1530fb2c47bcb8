// A real `redis-server` (Debian package redis-server) on a free loopback port, for the shared-index tests:
// no persistence (`--save "" --appendonly no`), ready once it answers PING, killed after. Missing binary =
// a failing test with the install command, never a skip: these tests are the only proof the Redis path works.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import net from "node:net";
import { freePort } from "./free-port.js";

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** SIGKILL (a crash: no goodbye to clients), then waits for the exit. */
  kill(): Promise<void>;
  /** Starts a fresh, empty server on the same port (after `kill`). */
  restart(): Promise<void>;
  /** One raw command's first reply line, e.g. `["DBSIZE"]` → ":12". */
  command(args: readonly string[]): Promise<string>;
  stop(): Promise<void>;
}

const INSTALL_HINT =
  "redis-server is not installed: the shared-index tests need a real Redis. " +
  "Install it with: apt-get update && apt-get install -y redis-server";

export function assertRedisInstalled(): void {
  const r = spawnSync("redis-server", ["--version"], { encoding: "utf8" });
  if (r.error !== undefined || r.status !== 0) throw new Error(INSTALL_HINT);
}

export async function startRedisServer(): Promise<RedisServer> {
  assertRedisInstalled();
  const port = await freePort();
  let proc: ChildProcess | null = null;
  const launch = async () => {
    const p = spawn(
      "redis-server",
      [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--loglevel",
        "warning",
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
    proc = p;
    await waitForPing(port, p);
  };
  const kill = async () => {
    const p = proc;
    proc = null;
    if (p === null || p.exitCode !== null || p.signalCode !== null) return;
    const exited = once(p, "exit");
    p.kill("SIGKILL");
    await exited;
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    restart: launch,
    command: (args) => rawCommand(port, args),
    stop: kill,
  };
}

async function waitForPing(port: number, proc: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null)
      throw new Error(`redis-server exited with code ${proc.exitCode} (port ${port})`);
    try {
      if ((await rawCommand(port, ["PING"])) === "+PONG") return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} not answering PING`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Sends one command in RESP and resolves with the first line of the reply. */
function rawCommand(port: number, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, "127.0.0.1");
    let buf = "";
    sock.setTimeout(2000, () => sock.destroy(new Error("redis command timed out")));
    sock.on("error", reject);
    sock.on("connect", () => {
      sock.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`);
    });
    sock.on("data", (d) => {
      buf += d.toString("utf8");
      const end = buf.indexOf("\r\n");
      if (end >= 0) {
        sock.end();
        resolve(buf.slice(0, end));
      }
    });
  });
}
