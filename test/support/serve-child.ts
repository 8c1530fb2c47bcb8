// `kvpick serve` as a real child process on free loopback ports, for tests and benchmarks that need the
// real process (signals, CPU accounting), plus the request-headers message every Envoy-like caller sends.
import { type ChildProcess, spawn, type StdioOptions } from "node:child_process";
import { once } from "node:events";
import { freePort } from "./free-port.js";
import { repoRoot } from "./golden.js";

export interface ServeChild {
  readonly proc: ChildProcess;
  readonly grpcPort: number;
  readonly healthPort: number;
  readonly metricsPort: number;
  /** The ZeroMQ bind port (`--kv-events-endpoint tcp://127.0.0.1:<kvPort>`). */
  readonly kvPort: number;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
}

/**
 * Plaintext, hash seed 42 (`hashSeed: null` = no --hash-seed); `args` add to (or, for the same flag given
 * later, override) these.
 */
export async function spawnServe(
  args: readonly string[],
  options: {
    nodeArgs?: readonly string[];
    stdio?: StdioOptions;
    env?: Record<string, string>;
    hashSeed?: string | null;
    /** Another checkout whose build to run (a benchmark's A/B against a base commit); default this one. */
    root?: string;
  } = {},
): Promise<ServeChild> {
  const [grpcPort, healthPort, metricsPort, kvPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const proc = spawn(
    process.execPath,
    [
      ...(options.nodeArgs ?? []),
      `${options.root ?? repoRoot}/dist/src/main.js`,
      "serve",
      ...(options.hashSeed === null ? [] : [`--hash-seed=${options.hashSeed ?? "42"}`]),
      "--secure-serving=false",
      `--grpc-port=${grpcPort}`,
      `--grpc-health-port=${healthPort}`,
      `--metrics-port=${metricsPort}`,
      `--kv-events-endpoint=tcp://127.0.0.1:${kvPort}`,
      ...args,
    ],
    { stdio: options.stdio ?? ["ignore", "ignore", "inherit"], env: { ...process.env, ...options.env } },
  );
  return {
    proc,
    grpcPort,
    healthPort,
    metricsPort,
    kvPort,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = once(proc, "exit");
      proc.kill("SIGTERM");
      await exited;
    },
  };
}

/** A `request_headers` ProcessingRequest as Envoy sends it (raw_value bytes), body to follow. */
export function requestHeadersMessage(path: string, extra: Record<string, string> = {}, method = "POST") {
  const headers: Record<string, string> = {
    ":method": method,
    ":path": path,
    "content-type": "application/json",
    ...extra,
  };
  return {
    request_headers: {
      headers: { headers: Object.entries(headers).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) },
      end_of_stream: false,
    },
  };
}
