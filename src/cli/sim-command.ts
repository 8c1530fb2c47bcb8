// `kvpick sim`: N live simulated vLLM pods (src/sim) on loopback, publishing KV events to kvpick, until
// SIGINT/SIGTERM. Prints one line per pod with its URL and topic.
import { once } from "node:events";
import { HASH_ALGOS, type HashAlgo } from "../config/schema.js";
import { createLogger } from "../observability/logger.js";
import { DEFAULT_ENGINE_CONFIG } from "../sim/engine-config.js";
import { EVENT_LAYOUTS, type EventLayout } from "../sim/kv-event-encoder.js";
import { DEFAULT_BUFFER_STEPS } from "../sim/kv-event-publisher.js";
import { REPLAY_LAYOUTS, type ReplayLayout } from "../sim/kv-event-replay-server.js";
import type { IpMode } from "../sim/sim-cluster.js";
import { type SimSettings, startSim } from "../sim/start-sim.js";
import { type FlagSpec, FlagError, type FlagValues, parseFlags, usage } from "./flags.js";

const D = DEFAULT_ENGINE_CONFIG;
export const SIM_FLAGS: Record<string, FlagSpec> = {
  pods: { kind: "int", help: "number of simulated pods", default: "4" },
  "base-port": { kind: "int", help: "HTTP port of pod 0 (pod i: +i); 0 = free ports", default: "8001" },
  "same-port": {
    kind: "bool",
    help: "every pod on --base-port (loopback ip mode: one IP each), as an InferencePool's targetPort",
  },
  "ip-mode": {
    kind: "string",
    help: "loopback (pod i on 127.0.0.(101+i)) | single (127.0.0.1, topic ip:port) | auto",
    default: "auto",
  },
  "kv-events-connect": {
    kind: "string",
    help: "dial kvpick's bound SUB (kvpick bind mode), e.g. tcp://127.0.0.1:5557",
  },
  "kv-events-bind-port": {
    kind: "int",
    help: "bind each pod's PUB on <pod-ip>:<port> (kvpick connect mode)",
  },
  "kv-events-replay-port": {
    kind: "int",
    help: "bind vLLM's replay ROUTER (replay_endpoint) on <pod-ip>:<port> (single ip mode: port + i); kvpick kvEvents.replayPort",
  },
  "kv-events-replay-layout": {
    kind: "string",
    help: `replay reply layout: ${REPLAY_LAYOUTS.join(" | ")} (vLLM ≤ 0.25 without topic | ≥ 0.26 with topic)`,
    default: "v0.10",
  },
  "kv-events-buffer-steps": {
    kind: "int",
    help: "vLLM buffer_steps: batches kept for replay",
    default: String(DEFAULT_BUFFER_STEPS),
  },
  "event-layout": {
    kind: "string",
    help: `KV-event layout: ${EVENT_LAYOUTS.join(" | ")}`,
    default: "v0.10.0",
  },
  "time-scale": { kind: "string", help: "run k× faster than real time, same ratios", default: "1" },
  "hash-seed": { kind: "string", help: "PYTHONHASHSEED of the simulated vLLM", default: "42" },
  "hash-algo": { kind: "string", help: "sha256_cbor_64bit | sha256_cbor", default: "sha256_cbor_64bit" },
  "block-size": { kind: "int", help: "vLLM --block-size", default: String(D.blockSize) },
  model: { kind: "string", help: "served model name", default: "Qwen3-32B" },
  "num-gpu-blocks": { kind: "int", help: "KV blocks per pod", default: String(D.numGpuBlocks) },
  "max-num-seqs": { kind: "int", help: "sequences per step", default: String(D.maxNumSeqs) },
  "max-num-batched-tokens": {
    kind: "int",
    help: "token budget per step",
    default: String(D.maxNumBatchedTokens),
  },
  "max-model-len": { kind: "int", help: "prompt + output limit", default: String(D.maxModelLen) },
  "prefill-tokens-per-second": {
    kind: "string",
    help: "compute rate",
    default: String(D.prefillTokensPerSecond),
  },
  "step-overhead-ms": {
    kind: "string",
    help: "fixed cost per step",
    default: String(D.stepOverheadSeconds * 1000),
  },
  "attention-ns-per-token": {
    kind: "string",
    help: "cost per context token per step",
    default: String(D.attentionSecondsPerContextToken * 1e9),
  },
  "default-max-tokens": {
    kind: "int",
    help: "chat output length when the request sets none",
    default: "256",
  },
  "drop-event-fraction": { kind: "string", help: "fault: fraction of event batches dropped", default: "0" },
  "event-delay-ms": { kind: "string", help: "fault: simulated ms each event batch is delayed", default: "0" },
  "fail-request-fraction": { kind: "string", help: "fault: fraction of requests answered 500", default: "0" },
  "log-level": { kind: "string", help: "trace | debug | info | warn | error", default: "info" },
};

function num(v: FlagValues, name: string, fallback: number, min = 0, max = Number.POSITIVE_INFINITY): number {
  const raw = v[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max)
    throw new FlagError(`--${name}: expected a number ${min}..${max}, got "${raw}"`);
  return n;
}

export function simSettings(v: FlagValues): SimSettings {
  const ipMode = (v["ip-mode"] ?? "auto") as string;
  if (!["auto", "loopback", "single"].includes(ipMode)) throw new FlagError(`--ip-mode: unknown "${ipMode}"`);
  const layout = (v["event-layout"] ?? "v0.10.0") as string;
  if (!(EVENT_LAYOUTS as readonly string[]).includes(layout))
    throw new FlagError(`--event-layout: unknown "${layout}"`);
  const algo = (v["hash-algo"] ?? "sha256_cbor_64bit") as string;
  if (!(HASH_ALGOS as readonly string[]).includes(algo))
    throw new FlagError(`--hash-algo: unknown "${algo}"`);
  if (v["kv-events-connect"] !== undefined && v["kv-events-bind-port"] !== undefined)
    throw new FlagError("--kv-events-connect and --kv-events-bind-port are mutually exclusive");
  const kvEvents: SimSettings["kvEvents"] =
    v["kv-events-connect"] !== undefined
      ? { mode: "connect", endpoint: v["kv-events-connect"] as string }
      : v["kv-events-bind-port"] !== undefined
        ? { mode: "bind", port: v["kv-events-bind-port"] as number }
        : { mode: "off" };
  const int = (name: string, fallback: number) => (v[name] as number | undefined) ?? fallback;
  const replayLayout = (v["kv-events-replay-layout"] ?? "v0.10") as string;
  if (!(REPLAY_LAYOUTS as readonly string[]).includes(replayLayout))
    throw new FlagError(`--kv-events-replay-layout: unknown "${replayLayout}"`);
  const replayPort = v["kv-events-replay-port"] as number | undefined;
  if (replayPort !== undefined && (replayPort < 1 || replayPort > 65535))
    throw new FlagError(`--kv-events-replay-port: expected a port 1..65535, got ${replayPort}`);
  const bufferSteps = int("kv-events-buffer-steps", DEFAULT_BUFFER_STEPS);
  if (bufferSteps < 1)
    throw new FlagError(`--kv-events-buffer-steps: expected at least 1, got ${bufferSteps}`);
  return {
    pods: int("pods", 4),
    basePort: int("base-port", 8001),
    samePort: v["same-port"] === true,
    ipMode: ipMode as IpMode,
    kvEvents,
    eventLayout: layout as EventLayout,
    replay:
      replayPort === undefined
        ? null
        : { port: replayPort, layout: replayLayout as ReplayLayout, bufferSteps },
    timeScale: num(v, "time-scale", 1, 1e-3, 1e6),
    hashSeed: (v["hash-seed"] as string | undefined) ?? "42",
    hashAlgo: algo as HashAlgo,
    model: (v.model as string | undefined) ?? "Qwen3-32B",
    engine: {
      numGpuBlocks: int("num-gpu-blocks", D.numGpuBlocks),
      blockSize: int("block-size", D.blockSize),
      maxNumSeqs: int("max-num-seqs", D.maxNumSeqs),
      maxNumBatchedTokens: int("max-num-batched-tokens", D.maxNumBatchedTokens),
      maxModelLen: int("max-model-len", D.maxModelLen),
      prefillTokensPerSecond: num(v, "prefill-tokens-per-second", D.prefillTokensPerSecond, 1),
      stepOverheadSeconds: num(v, "step-overhead-ms", D.stepOverheadSeconds * 1000) / 1000,
      attentionSecondsPerContextToken:
        num(v, "attention-ns-per-token", D.attentionSecondsPerContextToken * 1e9) / 1e9,
    },
    defaultMaxTokens: int("default-max-tokens", 256),
    faults: {
      dropEventFraction: num(v, "drop-event-fraction", 0, 0, 1),
      eventDelaySeconds: num(v, "event-delay-ms", 0) / 1000,
      failRequestFraction: num(v, "fail-request-fraction", 0, 0, 1),
      metricsDelayMs: 0,
      failMetrics: false,
      replayDropTailAfter: 0,
    },
    logLevel: (v["log-level"] as string | undefined) ?? "info",
  };
}

export async function runSimCommand(argv: string[]): Promise<number> {
  let s: SimSettings;
  try {
    const { values, help } = parseFlags(argv, SIM_FLAGS);
    if (help) {
      process.stdout.write(usage("sim", "[flags]", SIM_FLAGS));
      return 0;
    }
    s = simSettings(values);
  } catch (err) {
    if (err instanceof FlagError) {
      process.stderr.write(`kvpick sim: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const logger = createLogger({ level: s.logLevel as "info" });
  const { cluster, tokenizer } = await startSim(s, logger);
  const lines = cluster.pods.map(
    (p) =>
      `  http://${p.address}  topic ${p.topic}` +
      (p.publisher?.replayEndpoint ? `  replay ${p.publisher.replayEndpoint}` : ""),
  );
  process.stderr.write(
    `\nkvpick sim: ${cluster.pods.length} simulated vLLM pods (${s.model}, time scale ${s.timeScale}×, ` +
      `${cluster.ipMode} addressing, events ${s.kvEvents.mode === "off" ? "off" : s.kvEvents.mode === "connect" ? `→ ${s.kvEvents.endpoint}` : `bound on port ${s.kvEvents.port}`}):\n` +
      `${lines.join("\n")}\n` +
      `kvpick: --endpoints ${cluster.pods.map((p) => p.address).join(",")} --hash-seed ${s.hashSeed}` +
      `${s.replay === null ? "" : ` --kv-events-replay-port ${s.replay.port}`}\n\n`,
  );
  await Promise.race([once(process, "SIGTERM"), once(process, "SIGINT")]);
  await cluster.close();
  await tokenizer.stop();
  return 0;
}
