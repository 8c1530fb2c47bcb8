// Graceful shutdown of a real `kvpick serve` process: on SIGTERM the gRPC health service and /readyz report
// NOT_SERVING at once, an in-flight ext_proc stream is allowed to finish (within --drain-timeout), and the
// process exits 0 once it has. Also: the CLI's pool-source rules.
import { type ChildProcess, spawnSync } from "node:child_process";
import { once } from "node:events";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { EXT_PROC_SERVICE, HEALTH_SERVICE, loadProtos, serviceOf } from "../../src/ext-proc/protos.js";
import { spawnServe } from "../support/serve-child.js";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const MAIN = join(repoRoot, "dist", "src", "main.js");

let child: ChildProcess | null = null;
afterEach(() => {
  if (child !== null && child.exitCode === null) child.kill("SIGKILL");
  child = null;
});

function health(port: number, service: string): Promise<string> {
  return new Promise((resolve) => {
    const Health = serviceOf(loadProtos(), HEALTH_SERVICE);
    const client = new Health(
      `127.0.0.1:${port}`,
      grpc.credentials.createInsecure(),
    ) as unknown as grpc.Client & {
      Check(req: object, options: object, cb: (err: Error | null, res?: { status: string }) => void): void;
    };
    client.Check({ service }, { deadline: Date.now() + 2000 }, (err, res) => {
      client.close();
      resolve(err ? `error: ${err.message}` : res!.status);
    });
  });
}

async function readyz(port: number): Promise<number | string> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/readyz`)).status;
  } catch (err) {
    return String(err);
  }
}

describe("kvpick serve: SIGTERM", () => {
  it("reports NOT_SERVING, lets the in-flight stream finish, then exits 0", async () => {
    const serve = await spawnServe(["--endpoints=127.0.0.1:1", "--drain-timeout=20s", "--log-level=warn"], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    const { grpcPort, healthPort, metricsPort } = serve;
    const proc = serve.proc;
    child = proc;
    let stderr = "";
    proc.stderr!.on("data", (d) => {
      stderr += String(d);
    });
    const exited = once(proc, "exit") as Promise<[number | null, string | null]>;

    // Ready (poll: the process is starting up).
    let status = "";
    const deadline = Date.now() + 20_000;
    while (status !== "SERVING") {
      if (Date.now() > deadline || proc.exitCode !== null)
        throw new Error(`kvpick never became ready: ${stderr}`);
      status = await health(healthPort, "readiness");
      if (status !== "SERVING") await new Promise((r) => setTimeout(r, 50));
    }
    expect(await readyz(metricsPort)).toBe(200);

    // An in-flight request: headers sent, body still coming.
    const Processor = serviceOf(loadProtos(), EXT_PROC_SERVICE);
    const client = new Processor(
      `127.0.0.1:${grpcPort}`,
      grpc.credentials.createInsecure(),
    ) as unknown as grpc.Client & {
      Process(): grpc.ClientDuplexStream<object, object>;
    };
    const stream = client.Process();
    const streamEnded = new Promise<string>((resolve) => {
      stream.on("data", () => {});
      stream.on("error", (err: grpc.ServiceError) => resolve(`error ${err.code}`));
      stream.on("end", () => resolve("end"));
    });
    stream.write({
      request_headers: {
        headers: {
          headers: [
            { key: ":method", raw_value: Buffer.from("POST") },
            { key: ":path", raw_value: Buffer.from("/v1/completions") },
            { key: "content-type", raw_value: Buffer.from("application/json") },
          ],
        },
        end_of_stream: false,
      },
    });
    await new Promise((r) => setTimeout(r, 100)); // let the stream reach the server (no event to await)

    proc.kill("SIGTERM");
    let drainingStatus = "";
    const d2 = Date.now() + 10_000;
    while (drainingStatus !== "NOT_SERVING") {
      if (Date.now() > d2) throw new Error(`health never went NOT_SERVING (last ${drainingStatus})`);
      drainingStatus = await health(healthPort, "readiness");
    }
    expect(await health(healthPort, "liveness")).toBe("SERVING");
    expect(await readyz(metricsPort)).not.toBe(200);
    expect(proc.exitCode).toBeNull(); // still draining: the stream is open

    // Finish the request: a body with end_of_stream → kvpick answers; then the stream closes.
    stream.write({
      request_body: {
        body: Buffer.from(JSON.stringify({ model: "Qwen3-32B", prompt: "hello" })),
        end_of_stream: true,
      },
    });
    stream.end();
    const how = await streamEnded;
    expect(how).toBe("end");
    const [code] = await exited;
    client.close();
    expect(code).toBe(0);
  });
});

describe("kvpick serve: pool-source flags", () => {
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [MAIN, "serve", "--hash-seed=42", ...args], {
      encoding: "utf8",
      timeout: 20_000,
    });

  it("requires exactly one of --pool-name, --endpoint-selector, --endpoints", () => {
    const none = run();
    expect(none.status).toBe(2);
    expect(none.stderr).toMatch(/one of --pool-name, --endpoint-selector or --endpoints is required/);
    const two = run("--pool-name=qwen", "--endpoints=127.0.0.1:8000");
    expect(two.status).toBe(2);
    expect(two.stderr).toMatch(/mutually exclusive/);
    const badPorts = run("--endpoint-selector=app=vllm", "--endpoint-target-ports=80x");
    expect(badPorts.status).toBe(2);
    expect(badPorts.stderr).toMatch(/not a port number/);
    const badDrain = run("--endpoints=127.0.0.1:8000", "--drain-timeout=soon");
    expect(badDrain.status).toBe(2);
  });
});
