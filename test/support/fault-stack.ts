// The stack the fault suite breaks: a real `kvpick serve` child process (so it can be SIGKILLed, restarted
// and measured from outside), simulated vLLM pods on loopback publishing real KV events to it, and the
// Envoy stand-in in front. A shared-prefix workload (customers with long system prompts) measures routing
// quality as the pods see it: Σ cached_tokens / Σ prompt_tokens from vLLM-style `usage`.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config/load.js";
import { EnvoyFront } from "../../src/demo/envoy-front.js";
import { createLogger, type Logger } from "../../src/observability/logger.js";
import { LiveClock } from "../../src/sim/clock.js";
import { DEFAULT_ENGINE_CONFIG } from "../../src/sim/engine-config.js";
import { type SimCluster, startSimCluster } from "../../src/sim/sim-cluster.js";
import { TokenizationService } from "../../src/tokenization/tokenization-service.js";
import { until } from "./until.js";
import { FakeKubeApi, POOLS_V1, podObject, poolV1 } from "./fake-kube-api.js";
import { freePort } from "./free-port.js";
import { type ServeChild, spawnServe } from "./serve-child.js";

export interface FaultStackOptions {
  pods?: number;
  /** Extra `kvpick serve` flags (e.g. `--config-text=…`). */
  serveArgs?: readonly string[];
  /** Simulator time scale (default 200: a 1,200-token prefill takes well under a millisecond). */
  timeScale?: number;
  /** More pool members beyond the simulated pods (e.g. a fake pod whose identity a test publishes under). */
  extraEndpoints?: readonly string[];
  /**
   * Discover the pool from a fake Kubernetes API (InferencePool `qwen`, one target port shared by every pod,
   * pods `vllm-<i>`) instead of `--endpoints`, so tests can flip pods NotReady.
   */
  kube?: boolean;
  /** The pods bind vLLM replay sockets and kvpick dials them (`--kv-events-replay-port`); default true. */
  replay?: boolean;
  /** Keep kvpick's stdout (its JSON log lines) in `logs`. */
  captureLogs?: boolean;
}

export interface WaveResult {
  requests: number;
  /** HTTP status → count, as the client saw it. */
  statuses: Map<number, number>;
  promptTokens: number;
  cachedTokens: number;
  /** Σ cached / Σ prompt over the 200 responses. */
  hitRate: number;
  /** Pod address per answered request. */
  picks: string[];
}

const MODEL = "Qwen3-32B";

/** A customer's system prompt: ~1,300 Qwen3 tokens (20 full blocks), distinct per customer from token 0. */
export function systemPrompt(customer: string): string {
  const rules = Array.from(
    { length: 70 },
    (_, i) => `Rule ${i} for ${customer}: refunds within ${i + 3} days need receipt ${i * 7 + 1}.`,
  );
  return `You are the support assistant of ${customer}. ${rules.join(" ")}`;
}

export function chatBody(customer: string, question: string, extra: Record<string, unknown> = {}) {
  return {
    model: MODEL,
    max_tokens: 4,
    messages: [
      { role: "system", content: systemPrompt(customer) },
      { role: "user", content: question },
    ],
    ...extra,
  };
}

/**
 * `pods` simulated vLLM pods as an InferencePool's pods look: each on its own loopback IP (127.0.0.101+i), all
 * on one port, dialling kvpick's SUB at `kvEndpoint` (bind mode, the reference deployment; ZeroMQ retries
 * until it is bound), each with a vLLM replay socket on one shared port when `replay`.
 */
export async function startPoolPods(o: {
  pods: number;
  timeScale: number;
  kvEndpoint: string;
  replay: boolean;
  tokenizer: TokenizationService;
  logger: Logger;
}): Promise<{ cluster: SimCluster; port: number; replayPort: number }> {
  const port = await freePort("127.0.0.101");
  const replayPort = o.replay ? await freePort("127.0.0.101") : 0;
  const clock = new LiveClock(o.timeScale);
  const clusters: SimCluster[] = [];
  try {
    for (let i = 0; i < o.pods; i++) {
      clusters.push(
        await startSimCluster({
          pods: 1,
          basePort: port,
          ipMode: "loopback",
          firstHost: 101 + i,
          model: MODEL,
          engine: { ...DEFAULT_ENGINE_CONFIG },
          hashAlgo: "sha256_cbor_64bit",
          hashSeed: "42",
          clock,
          tokenizer: o.tokenizer,
          logger: o.logger,
          kvEvents: { mode: "connect", endpoint: o.kvEndpoint },
          kvEventsReplay: replayPort === 0 ? null : { port: replayPort },
        }),
      );
    }
  } catch (err) {
    await Promise.allSettled(clusters.map((c) => c.close()));
    throw err;
  }
  const cluster: SimCluster = {
    pods: clusters.flatMap((c) => c.pods),
    ipMode: "loopback",
    close: async () => void (await Promise.allSettled(clusters.map((c) => c.close()))),
  };
  return { cluster, port, replayPort };
}

export class FaultStack {
  serve!: ServeChild;
  cluster!: SimCluster;
  front!: EnvoyFront;
  /** Kubernetes mode only. */
  kube: FakeKubeApi | null = null;
  #env: Record<string, string> = {};
  #tokenizer!: TokenizationService;
  readonly #logger: Logger = createLogger({ level: "silent" });
  #args: string[] = [];
  #question = 0;
  #captureLogs = false;
  /** kvpick's stdout lines (`captureLogs`), every incarnation's. */
  readonly logs: string[] = [];

  /** Fixed ports so a restarted kvpick comes back where the pods and the front expect it. */
  #ports!: { grpc: number; health: number; metrics: number; kv: number };

  static async start(o: FaultStackOptions = {}): Promise<FaultStack> {
    const s = new FaultStack();
    try {
      await s.#start(o);
    } catch (err) {
      // The caller never gets the stack, so nothing else would stop the kvpick child and the pods: a failed
      // start must not leave processes behind to slow every later test.
      await s.close().catch(() => {});
      throw err;
    }
    return s;
  }

  async #start(o: FaultStackOptions): Promise<void> {
    this.#ports = {
      grpc: await freePort(),
      health: await freePort(),
      metrics: await freePort(),
      kv: await freePort(),
    };
    const n = o.pods ?? 3;
    this.#captureLogs = o.captureLogs === true;
    this.#tokenizer = new TokenizationService({ config: parseConfig({}).tokenizer, logger: this.#logger });
    const { cluster, port, replayPort } = await startPoolPods({
      pods: n,
      timeScale: o.timeScale ?? 200,
      kvEndpoint: `tcp://127.0.0.1:${this.#ports.kv}`,
      replay: o.replay !== false,
      tokenizer: this.#tokenizer,
      logger: this.#logger,
    });
    this.cluster = cluster;
    let pool: string[];
    if (o.kube) {
      this.kube = await new FakeKubeApi().start();
      this.kube.apply(POOLS_V1, poolV1("qwen", { app: "vllm" }, [port]));
      for (let i = 0; i < n; i++) this.setReady(i, true);
      const dir = mkdtempSync(join(tmpdir(), "kvpick-faults-"));
      writeFileSync(join(dir, "kubeconfig"), this.kube.kubeConfig().exportConfig());
      this.#env = { KUBECONFIG: join(dir, "kubeconfig") };
      // The stack reads its own /metrics without a service-account token.
      pool = ["--pool-name=qwen", "--pool-namespace=default", "--metrics-endpoint-auth=false"];
    } else {
      pool = [
        `--endpoints=${[...this.cluster.pods.map((p) => p.address), ...(o.extraEndpoints ?? [])].join(",")}`,
      ];
    }
    this.#args = [
      ...pool,
      "--log-level=warn",
      ...(replayPort === 0 ? [] : [`--kv-events-replay-port=${replayPort}`]),
      ...(o.serveArgs ?? []),
      `--grpc-port=${this.#ports.grpc}`,
      `--grpc-health-port=${this.#ports.health}`,
      `--metrics-port=${this.#ports.metrics}`,
      `--kv-events-endpoint=tcp://127.0.0.1:${this.#ports.kv}`,
    ];
    await this.#spawn();
    this.front = new EnvoyFront({
      extProcAddress: `127.0.0.1:${this.#ports.grpc}`,
      port: 0,
      logger: this.#logger,
    });
    await this.front.start();
  }

  /** Kubernetes mode: the pod object of simulated pod `i`, Ready or not. */
  setReady(i: number, ready: boolean): void {
    const pod = this.cluster.pods[i]!;
    this.kube!.apply("pods", podObject(`vllm-${i}`, pod.options.ip, { ready }));
  }

  async #spawn(): Promise<void> {
    this.serve = await spawnServe(this.#args, {
      env: this.#env,
      ...(this.#captureLogs ? { stdio: ["ignore", "pipe", "inherit"] as const } : {}),
    });
    if (this.#captureLogs) {
      let rest = "";
      this.serve.proc.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
        const lines = (rest + chunk).split("\n");
        rest = lines.pop()!;
        this.logs.push(...lines);
      });
    }
    await this.waitReady();
  }

  /** /readyz answers 200 and every pod has been scraped (metrics gauges appear after the first scrape). */
  // 45 s: Node start plus the tokenizer load take seconds of CPU, tens of seconds on a loaded 2-core machine.
  async waitReady(timeoutMs = 45_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.serve.proc.exitCode !== null)
        throw new Error(`kvpick exited with ${this.serve.proc.exitCode}`);
      try {
        const r = await fetch(`http://127.0.0.1:${this.#ports.metrics}/readyz`);
        if (r.status === 200) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error("kvpick never became ready");
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** SIGKILL (no drain, no goodbye), then the same command on the same ports. */
  async killAndRestart(beforeRestart?: () => Promise<void>): Promise<void> {
    this.serve.proc.kill("SIGKILL");
    await new Promise((r) => this.serve.proc.once("exit", r));
    await beforeRestart?.();
    await this.#spawn();
  }

  get alive(): boolean {
    return this.serve.proc.exitCode === null && this.serve.proc.signalCode === null;
  }

  /** Resident set size of the kvpick process, from /proc (Linux). */
  rssBytes(): number {
    const status = readFileSync(`/proc/${this.serve.proc.pid}/status`, "utf8");
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(status);
    if (kb === null) throw new Error("no VmRSS in /proc status");
    return Number(kb[1]) * 1024;
  }

  get metricsPort(): number {
    return this.#ports.metrics;
  }

  get grpcAddress(): string {
    return `127.0.0.1:${this.#ports.grpc}`;
  }

  get kvEndpoint(): string {
    return `tcp://127.0.0.1:${this.#ports.kv}`;
  }

  async metricsText(): Promise<string> {
    return (await fetch(`http://127.0.0.1:${this.#ports.metrics}/metrics`)).text();
  }

  /** Sum of every sample of `name` whose labels contain all of `labels` (0 when absent). */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    return sumSamples(await this.metricsText(), name, labels);
  }

  /** One chat request through the front; a transport failure counts as status 0. */
  async ask(customer: string, extra: Record<string, unknown> = {}) {
    const question = `Question ${this.#question++}: may I return item ${this.#question % 97}?`;
    try {
      const r = await fetch(`http://127.0.0.1:${this.front.port}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(chatBody(customer, question, extra)),
        signal: AbortSignal.timeout(20_000),
      });
      const text = await r.text();
      const usage = r.status === 200 ? (JSON.parse(text) as { usage: Usage }).usage : null;
      return { status: r.status, pod: r.headers.get("x-kvpick-destination"), usage };
    } catch {
      return { status: 0, pod: null, usage: null };
    }
  }

  /**
   * Every customer once, `concurrency` requests at a time. Waits for kvpick to have applied the pods' events
   * between waves (events lag the responses by an engine step), so waves are comparable.
   */
  async wave(customers: readonly string[], concurrency = 4): Promise<WaveResult> {
    const out: WaveResult = {
      requests: 0,
      statuses: new Map(),
      promptTokens: 0,
      cachedTokens: 0,
      hitRate: 0,
      picks: [],
    };
    const queue = [...customers];
    const worker = async () => {
      for (let c = queue.shift(); c !== undefined; c = queue.shift()) {
        const r = await this.ask(c);
        out.requests++;
        out.statuses.set(r.status, (out.statuses.get(r.status) ?? 0) + 1);
        if (r.pod !== null && r.pod !== "") out.picks.push(r.pod);
        if (r.usage !== null) {
          out.promptTokens += r.usage.prompt_tokens;
          out.cachedTokens += r.usage.prompt_tokens_details?.cached_tokens ?? 0;
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    out.hitRate = out.promptTokens === 0 ? 0 : out.cachedTokens / out.promptTokens;
    await this.settle();
    return out;
  }

  /** Cold wave, then the hit rate of a warm wave: the level routing must return to after a fault. */
  async baseline(who: readonly string[]): Promise<number> {
    await this.wave(who);
    const warm = await this.wave(who);
    if (warm.statuses.get(200) !== who.length) throw new Error(`baseline: ${[...warm.statuses]} answers`);
    if (warm.hitRate <= 0.7)
      throw new Error(`baseline hit rate ${warm.hitRate} is too low to measure recovery`);
    note("baseline hit rate", warm.hitRate.toFixed(3));
    return warm.hitRate;
  }

  /**
   * Waves (every one fully answered) until the hit rate is back within 5 points of `before`, at most `waves`
   * of them; returns the last hit rate for the caller to assert on.
   */
  async recovery(
    who: readonly string[],
    before: number,
    waves = 6,
  ): Promise<{ hitRate: number; ok: boolean }> {
    let last = 0;
    for (let i = 0; i < waves && last < before - 0.05; i++) {
      const w = await this.wave(who);
      if (w.statuses.get(200) !== who.length)
        throw new Error(`recovery wave ${i}: ${[...w.statuses]} answers`);
      last = w.hitRate;
      note("recovery wave", i, "hit rate", last.toFixed(3));
    }
    return { hitRate: last, ok: last >= before - 0.05 };
  }

  /** Lets in-flight KV events land (they follow the engine step that produced them). */
  async settle(): Promise<void> {
    await new Promise((r) => setTimeout(r, 150));
  }

  async close(): Promise<void> {
    await this.front?.close();
    await this.serve?.stop();
    await this.cluster?.close();
    await this.#tokenizer?.stop();
    await this.kube?.stop();
  }
}

interface Usage {
  prompt_tokens: number;
  prompt_tokens_details?: { cached_tokens?: number };
}

export function sumSamples(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== " " && rest[0] !== "{") continue;
    if (!Object.entries(labels).every(([k, v]) => rest.includes(`${k}="${v}"`))) continue;
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (Number.isFinite(value)) sum += value;
  }
  return sum;
}

export { until };

/** Prints a test's figures when KVPICK_FAULTS_VERBOSE is set (to see what the assertions saw). */
export function note(...parts: unknown[]): void {
  if (process.env.KVPICK_FAULTS_VERBOSE) console.log("[faults]", ...parts);
}
