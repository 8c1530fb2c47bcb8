// One workload replayed LIVE: a real `kvpick serve` child process, a `kvpick sim` child process (N simulated
// vLLM pods on 127.0.0.(101+i), LiveClock at --time-scale k, real ZeroMQ KV events dialling kvpick's SUB, or
// none for the blind baseline), the Envoy stand-in (src/demo/envoy-front.ts) in this process, and a client
// that sends every arrival at wall time start / k as a streaming /v1/completions request with the prompt as
// token ids. TTFT = wall time from send to the first content chunk × k (simulated seconds, so it compares
// with the virtual run); hit rate from usage.prompt_tokens_details.cached_tokens; pod from the front's
// x-kvpick-destination header. Everything on loopback, bounded in time, children killed on every exit path.
// Optionally (flow-control-live.ts) the pool comes from a Kubernetes API (the fake, via $KUBECONFIG: an
// InferencePool, its pods and InferenceObjectives), kvpick reads a config file, each request carries headers
// of its session, and 429/503 answers are kept with their error code.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request as httpRequest } from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EnvoyFront } from "../../src/demo/envoy-front.js";
import { createLogger } from "../../src/observability/logger.js";
import type { EngineConfig } from "../../src/sim/engine-config.js";
import {
  FakeKubeApi,
  OBJECTIVES,
  objectiveV1alpha2,
  POOLS_V1,
  podObject,
  poolV1,
} from "../../test/support/fake-kube-api.js";
import type { RejectedRecord, RequestRecord, RunResult } from "./virtual-run.js";
import type { Session, Workload } from "./workloads.js";

export interface LiveOptions {
  workload: Workload;
  /** "precise": pods publish KV events to kvpick; "blind": no events, kvpick routes on load alone. */
  mode: "precise" | "blind";
  pods: number;
  engine: EngineConfig;
  timeScale: number;
  hashSeed: string;
  model: string;
  maxInFlight: number;
  /** kvpick's /metrics scrape interval, wall ms. */
  scrapeIntervalMs: number;
  /** Wall seconds a single request may take before it is abandoned. */
  requestTimeoutSeconds: number;
  /** Path of the built CLI (dist/src/main.js). */
  mainJs: string;
  /** kvpick's --config-file (absent: defaults). */
  configFile?: string;
  /** More `kvpick serve` flags (after the harness's own, so they win). */
  serveArgs?: string[];
  /**
   * Discover the pool from a Kubernetes API (a fake on loopback, reached through $KUBECONFIG) instead of
   * --endpoints: InferencePool `bench`, every pod on one port, and these InferenceObjectives (name → priority).
   */
  kube?: { objectives: Readonly<Record<string, number>> };
  /** Extra request headers of a session (e.g. the objective and fairness id). */
  headersOf?: (s: Session) => Record<string, string>;
}

export interface LiveResult extends RunResult {
  /** Requests not completed with 200 (includes `rejected` and `timedOut`). */
  failed: number;
  /** 429/503 answers carrying an OpenAI-style error (kvpick's); queueWait = wall s to the answer × k. */
  rejected: RejectedRecord[];
  /** Requests abandoned at the client timeout (left hanging). */
  timedOut: number;
  /** Every other failure, by message (bounded: messages are the harness's and the front's own). */
  errors: Record<string, number>;
  /** kvpick's /metrics text, scraped after the replay settled. */
  metricsText: string;
  /** Wall seconds of the replay alone (first send → last response). */
  replayWallSeconds: number;
}

const HOST_BASE = 101;
const podIp = (i: number) => `127.0.0.${HOST_BASE + i}`;

function listenOnce(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(port, host, () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** A base port B such that B..B+ports−1 are free on the first `ips` pod IPs (bounded tries). */
async function freePodBasePort(ports: number, ips = ports): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const base = await listenOnce("127.0.0.1", 0);
    if (base + ports > 65535) continue;
    try {
      for (let i = 0; i < Math.max(ports, ips); i++)
        await listenOnce(podIp(i), base + Math.min(i, ports - 1));
      return base;
    } catch {
      // taken somewhere: try another base
    }
  }
  throw new Error("no free port range for the simulated pods");
}

/** GETs `url` until it answers 200 or `seconds` pass. */
async function waitFor200(url: string, seconds: number, child: ChildProcess, what: string): Promise<void> {
  const deadline = performance.now() + seconds * 1000;
  while (performance.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const r = httpRequest(url, { timeout: 1000 }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      r.on("error", () => resolve(false));
      r.on("timeout", () => r.destroy());
      r.end();
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not ready after ${seconds} s (${url})`);
}

function startChild(
  mainJs: string,
  args: string[],
  tail: string[],
  env: Record<string, string> = {},
): ChildProcess {
  const child = spawn(process.execPath, [mainJs, ...args], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, ...env },
  });
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (s: string) => {
    tail.push(s);
    if (tail.length > 20) tail.shift();
  });
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

/** The completions body of a prompt, serialized once per distinct prompt (the workload reuses its arrays). */
const bodyCache = new WeakMap<Uint32Array, string>();
function body(model: string, key: Uint32Array, parts: readonly Uint32Array[], maxTokens: number): string {
  let s = bodyCache.get(key);
  if (s !== undefined) return s;
  const ids: number[] = [];
  for (const p of parts) for (const t of p) ids.push(t);
  s = JSON.stringify({
    model,
    prompt: ids,
    max_tokens: maxTokens,
    stream: true,
    stream_options: { include_usage: true },
  });
  bodyCache.set(key, s);
  return s;
}

interface Exchange {
  status: 200;
  ttftWall: number;
  endWall: number;
  pod: string;
  promptTokens: number;
  cachedTokens: number;
  outputTokens: number;
  chunkTimes: number[];
}

/** A 429/503 answer with an OpenAI-style JSON error body (`{"error":{"code"}}`). */
interface Refusal {
  status: number;
  code: string;
  wall: number;
}

class RequestTimeout extends Error {}

/**
 * One streaming request through the front; resolves with what the client saw (a stream, or a 429/503 with a
 * JSON error), rejects on any other failure and with RequestTimeout at the timeout.
 */
function send(
  agent: Agent,
  port: number,
  payload: string,
  timeoutSeconds: number,
  extraHeaders: Record<string, string> = {},
): Promise<Exchange | Refusal> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port,
        method: "POST",
        path: "/v1/completions",
        agent,
        headers: {
          ...extraHeaders,
          "content-type": "application/json",
          "content-length": Buffer.byteLength(payload),
        },
      },
      (res) => {
        if (res.statusCode !== 200) {
          const status = res.statusCode ?? 0;
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (s: string) => {
            if (text.length < 4096) text += s;
          });
          res.on("end", () => {
            let code: unknown;
            try {
              code = (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
            } catch {
              code = undefined;
            }
            if ((status === 429 || status === 503) && typeof code === "string")
              resolve({ status, code, wall: (performance.now() - t0) / 1000 });
            else reject(new Error(`HTTP ${status}: ${text.slice(0, 200)}`));
          });
          res.on("error", reject);
          return;
        }
        const pod = String(res.headers["x-kvpick-destination"] ?? "");
        res.setEncoding("utf8");
        let buf = "";
        let ttft = -1;
        const chunkTimes: number[] = [];
        let usage: { prompt_tokens: number; completion_tokens: number; cached: number } | null = null;
        res.on("data", (s: string) => {
          buf += s;
          for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
            const ev = buf.slice(0, i);
            buf = buf.slice(i + 2);
            if (!ev.startsWith("data: ") || ev === "data: [DONE]") continue;
            const now = performance.now();
            // Cheap check first: content chunks carry "choices":[{…}], the usage chunk "choices":[].
            if (ev.includes('"usage"')) {
              const u = (JSON.parse(ev.slice(6)) as { usage: Record<string, unknown> }).usage;
              usage = {
                prompt_tokens: Number(u.prompt_tokens),
                completion_tokens: Number(u.completion_tokens),
                cached: Number(
                  (u.prompt_tokens_details as { cached_tokens?: number } | null)?.cached_tokens ?? 0,
                ),
              };
            } else {
              if (ttft < 0) ttft = now - t0;
              chunkTimes.push(now);
            }
          }
        });
        res.on("end", () => {
          if (usage === null || ttft < 0) return reject(new Error("stream ended without content or usage"));
          const u = usage as { prompt_tokens: number; completion_tokens: number; cached: number };
          resolve({
            status: 200,
            ttftWall: ttft / 1000,
            endWall: performance.now(),
            pod,
            promptTokens: u.prompt_tokens,
            cachedTokens: u.cached,
            outputTokens: u.completion_tokens,
            chunkTimes,
          });
        });
        res.on("error", reject);
      },
    );
    req.setTimeout(timeoutSeconds * 1000, () => req.destroy(new RequestTimeout("request timeout")));
    req.on("error", reject);
    req.end(payload);
  });
}

export async function runLive(o: LiveOptions): Promise<LiveResult> {
  const wallStart = performance.now();
  const logger = createLogger({ level: "warn" });
  const kvPort = await listenOnce("127.0.0.1", 0);
  const [grpcPort, healthPort, metricsPort] = [
    await listenOnce("127.0.0.1", 0),
    await listenOnce("127.0.0.1", 0),
    await listenOnce("127.0.0.1", 0),
  ];
  // A Kubernetes pool has one targetPort: every pod on it (each pod has its own IP).
  const samePort = o.kube !== undefined;
  const base = await freePodBasePort(samePort ? 1 : o.pods, samePort ? o.pods : 1);
  const addresses = Array.from({ length: o.pods }, (_, i) => `${podIp(i)}:${base + (samePort ? 0 : i)}`);
  const e = o.engine;
  const simTail: string[] = [];
  const kvTail: string[] = [];
  const children: ChildProcess[] = [];
  let front: EnvoyFront | null = null;
  let kube: FakeKubeApi | null = null;
  let kubeDir: string | null = null;
  const agent = new Agent({ keepAlive: true, maxSockets: o.maxInFlight });
  // Ctrl-C / kill of the benchmark must not orphan the children.
  const onSignal = () => {
    for (const c of children) c.kill("SIGKILL");
    process.exit(130);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    let pool = [`--endpoints=${addresses.join(",")}`];
    const env: Record<string, string> = {};
    if (o.kube !== undefined) {
      kube = await new FakeKubeApi().start();
      kube.apply(POOLS_V1, poolV1("bench", { app: "sim" }, [base]));
      for (let i = 0; i < o.pods; i++)
        kube.apply("pods", podObject(`sim-${i}`, podIp(i), { labels: { app: "sim" } }));
      for (const [name, priority] of Object.entries(o.kube.objectives))
        kube.apply(OBJECTIVES, objectiveV1alpha2(name, "bench", priority));
      kubeDir = mkdtempSync(join(tmpdir(), "kvpick-live-"));
      env.KUBECONFIG = join(kubeDir, "kubeconfig");
      writeFileSync(env.KUBECONFIG, kube.kubeConfig().exportConfig());
      pool = ["--pool-name=bench", "--pool-namespace=default", "--metrics-endpoint-auth=false"];
    }
    const kvpick = startChild(
      o.mainJs,
      [
        "serve",
        `--hash-seed=${o.hashSeed}`,
        "--secure-serving=false",
        ...pool,
        ...(o.configFile === undefined ? [] : [`--config-file=${o.configFile}`]),
        `--kv-events-endpoint=tcp://127.0.0.1:${kvPort}`,
        `--grpc-port=${grpcPort}`,
        `--grpc-health-port=${healthPort}`,
        `--metrics-port=${metricsPort}`,
        `--block-size=${e.blockSize}`,
        `--refresh-metrics-interval=${o.scrapeIntervalMs}ms`,
        "--log-level=warn",
        ...(o.serveArgs ?? []),
      ],
      kvTail,
      env,
    );
    children.push(kvpick);
    const sim = startChild(
      o.mainJs,
      [
        "sim",
        `--pods=${o.pods}`,
        `--base-port=${base}`,
        ...(samePort ? ["--same-port"] : []),
        "--ip-mode=loopback",
        ...(o.mode === "precise" ? [`--kv-events-connect=tcp://127.0.0.1:${kvPort}`] : []),
        `--time-scale=${o.timeScale}`,
        `--hash-seed=${o.hashSeed}`,
        `--model=${o.model}`,
        `--block-size=${e.blockSize}`,
        `--num-gpu-blocks=${e.numGpuBlocks}`,
        `--max-num-seqs=${e.maxNumSeqs}`,
        `--max-num-batched-tokens=${e.maxNumBatchedTokens}`,
        `--max-model-len=${e.maxModelLen}`,
        `--prefill-tokens-per-second=${e.prefillTokensPerSecond}`,
        `--step-overhead-ms=${e.stepOverheadSeconds * 1000}`,
        `--attention-ns-per-token=${e.attentionSecondsPerContextToken * 1e9}`,
        "--log-level=warn",
      ],
      simTail,
    );
    children.push(sim);
    for (const a of addresses) await waitFor200(`http://${a}/health`, 60, sim, "kvpick sim");
    await waitFor200(`http://127.0.0.1:${metricsPort}/readyz`, 60, kvpick, "kvpick serve");
    front = new EnvoyFront({ extProcAddress: `127.0.0.1:${grpcPort}`, port: 0, logger });
    const frontPort = await front.start();

    // Replay: arrivals at wall start / k, at most maxInFlight in flight (FIFO backlog, as the virtual run).
    const k = o.timeScale;
    const records: RequestRecord[] = [];
    const rejected: RejectedRecord[] = [];
    const chunkWall: number[] = [];
    let failed = 0;
    let timedOut = 0;
    const errors: Record<string, number> = {};
    let inFlight = 0;
    const backlog: Array<() => void> = [];
    const done: Array<Promise<void>> = [];
    const replay0 = performance.now();
    const podIndex = new Map(addresses.map((a, i) => [a, i]));
    const issue = (sIdx: number) => {
      const s = o.workload.sessions[sIdx]!;
      const turn = s.turns[0]!;
      const intended = (performance.now() - replay0) / 1000;
      const go = () => {
        inFlight++;
        const sent = (performance.now() - replay0) / 1000;
        const payload = body(
          o.model,
          turn.question, // one question array per (group, user): the key of the whole prompt
          [o.workload.systemPrompts[s.group]!, turn.question],
          turn.outputTokens,
        );
        done.push(
          send(agent, frontPort, payload, o.requestTimeoutSeconds, o.headersOf?.(s))
            .then((x) => {
              if ("code" in x) {
                failed++;
                rejected.push({
                  tenant: s.tenant ?? "",
                  arrival: intended * k,
                  code: x.code as RejectedRecord["code"],
                  status: x.status,
                  queueWait: x.wall * k,
                });
                return;
              }
              for (const t of x.chunkTimes) chunkWall.push(t);
              records.push({
                ...(s.tenant === undefined ? {} : { tenant: s.tenant }),
                stage: s.stage,
                arrival: intended * k,
                clientWait: (sent - intended) * k,
                ttft: x.ttftWall * k,
                finished: ((x.endWall - replay0) / 1000) * k,
                promptTokens: x.promptTokens,
                cachedTokens: x.cachedTokens,
                outputTokens: x.outputTokens,
                preemptions: 0,
                pod: podIndex.get(x.pod) ?? -1,
              });
            })
            .catch((err: unknown) => {
              failed++;
              if (err instanceof RequestTimeout) timedOut++;
              else {
                const msg = String((err as Error).message ?? err).slice(0, 120);
                errors[msg] = (errors[msg] ?? 0) + 1;
              }
            })
            .finally(() => {
              inFlight--;
              const next = backlog.shift();
              if (next !== undefined) next();
            }),
        );
      };
      if (inFlight < o.maxInFlight) go();
      else backlog.push(go);
    };
    const timers = o.workload.sessions.map((s, i) => setTimeout(() => issue(i), (s.start / k) * 1000));
    const loadWall = o.workload.stages.reduce((n, s) => n + s.seconds, 0) / k;
    // Wait until every arrival has fired and every request has settled (bounded by timeouts per request).
    await new Promise((r) => setTimeout(r, loadWall * 1000 + 50));
    const settleDeadline = performance.now() + (o.requestTimeoutSeconds + 5) * 1000;
    while (
      (done.length < o.workload.sessions.length || inFlight > 0 || backlog.length > 0) &&
      performance.now() < settleDeadline
    ) {
      await Promise.allSettled([...done]);
      if (done.length < o.workload.sessions.length) await new Promise((r) => setTimeout(r, 50));
    }
    for (const t of timers) clearTimeout(t);
    const replayWall = (performance.now() - replay0) / 1000;
    const metricsText = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
      .then((r) => r.text())
      .catch((err: unknown) => `# scrape failed: ${(err as Error).message}`);

    const tokensPerSecond: number[] = [];
    for (const t of chunkWall) {
      const b = Math.floor(((t - replay0) / 1000) * k);
      while (tokensPerSecond.length <= b) tokensPerSecond.push(0);
      tokensPerSecond[b]!++;
    }
    records.sort((a, b) => a.arrival - b.arrival);
    return {
      policy: o.mode === "precise" ? "precise" : "load",
      records,
      tokensPerSecond,
      stageMeanWaiting: o.workload.stages.map(() => 0),
      meanWaiting: 0,
      makespan: records.reduce((m, r) => Math.max(m, r.finished), 0),
      wallSeconds: (performance.now() - wallStart) / 1000,
      routingSeconds: 0,
      eventBatches: 0,
      indexEntriesAtEnd: 0,
      failed,
      rejected,
      timedOut,
      errors,
      metricsText,
      replayWallSeconds: replayWall,
    };
  } catch (err) {
    const tails = `\n--- kvpick serve stderr ---\n${kvTail.join("")}\n--- kvpick sim stderr ---\n${simTail.join("")}`;
    throw new Error(`${(err as Error).message}${tails}`);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    agent.destroy();
    await front?.close();
    await Promise.allSettled(children.map(stopChild));
    await kube?.stop();
    if (kubeDir !== null) rmSync(kubeDir, { recursive: true, force: true });
  }
}
