// `kvpick demo` (what `npm start` runs): the whole stack on this machine, in one process —
// kvpick (createApp: plaintext ext_proc, hash seed 42, KV events bound on 127.0.0.1:5557), 4 simulated
// vLLM pods (src/sim) publishing to it, and a local stand-in for Envoy on :8080 (src/demo/envoy-front.ts;
// NOT a production proxy). kvpick's "Request handled" lines go to stdout as JSON; the banner to stderr.
// Default time scale 10: the pods run 10× faster than a real Qwen3-32B on 2×H100, so a 256-token answer
// streams in ~0.4 s and a cold 6k-token prefill takes ~40 ms — responsive, with the same ratios.
import { once } from "node:events";
import { createLogger } from "../observability/logger.js";
import { startDemoStack } from "../demo/demo-stack.js";
import { TrafficGenerator } from "../demo/traffic-generator.js";
import { type FlagSpec, FlagError, parseFlags, usage } from "./flags.js";
import { SIM_FLAGS, simSettings } from "./sim-command.js";

const DEMO_FLAGS: Record<string, FlagSpec> = {
  port: { kind: "int", help: "HTTP port of the Envoy stand-in", default: "8080" },
  "kv-events-port": {
    kind: "int",
    help: "kvpick's KV-event SUB port on 127.0.0.1 (0 = free)",
    default: "5557",
  },
  traffic: { kind: "bool", help: "run the built-in traffic generator and print a summary every 5 s" },
  "traffic-qps": { kind: "string", help: "generator: mean requests per second", default: "4" },
  "traffic-customers": { kind: "int", help: "generator: customers (distinct system prompts)", default: "16" },
  "traffic-system-words": { kind: "int", help: "generator: words per system prompt", default: "1500" },
  "traffic-max-tokens": { kind: "int", help: "generator: max_tokens per request", default: "64" },
  ...SIM_FLAGS,
};
// Demo defaults that differ from `kvpick sim`.
const DEMO_DEFAULTS = ["--time-scale", "10", "--base-port", "8001", "--log-level", "info"];

export async function runDemoCommand(argv: string[]): Promise<number> {
  let values: ReturnType<typeof parseFlags>["values"];
  try {
    const parsed = parseFlags([...DEMO_DEFAULTS, ...argv], DEMO_FLAGS);
    if (parsed.help) {
      process.stdout.write(usage("demo", "[flags]", DEMO_FLAGS));
      return 0;
    }
    values = parsed.values;
  } catch (err) {
    if (err instanceof FlagError) {
      process.stderr.write(`kvpick demo: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (values["kv-events-connect"] !== undefined || values["kv-events-bind-port"] !== undefined) {
    process.stderr.write(
      "kvpick demo: the pods always publish to the demo's own kvpick (use `kvpick sim` for that)\n",
    );
    return 2;
  }
  const sim = simSettings(values);
  const logger = createLogger({ level: sim.logLevel as "info" });
  const frontPort = (values.port as number | undefined) ?? 8080;
  const stack = await startDemoStack({
    sim,
    frontPort,
    kvEventsPort: (values["kv-events-port"] as number | undefined) ?? 5557,
    logger,
  });
  const url = `http://localhost:${stack.front.port}`;
  const pods = stack.cluster.pods.map((p) => `    ${p.address}  (topic ${p.topic})`).join("\n");
  process.stderr.write(
    `
kvpick demo is up (a local stand-in for Envoy → kvpick over ext_proc → ${sim.pods} simulated vLLM pods).
  front (stand-in for Envoy, not a production proxy): ${url}
  kvpick: ext_proc 127.0.0.1:${stack.ports.grpcPort}, metrics http://127.0.0.1:${stack.ports.metricsPort}/metrics, KV events ${stack.ports.kvEventsEndpoint}
  simulated ${sim.model} pods (time scale ${sim.timeScale}×, hash seed ${sim.hashSeed}, block size ${sim.engine.blockSize}):
${pods}

Try (twice: the second answer reports cached_tokens and lands on the same pod, see x-kvpick-destination):
  curl -si ${url}/v1/chat/completions -H 'content-type: application/json' -d '{"model":"${sim.model}","max_tokens":32,"messages":[{"role":"system","content":"You are a helpful assistant. ${"Answer briefly and politely. ".repeat(40).trim()}"},{"role":"user","content":"What is KV-cache aware routing?"}]}'
Streaming: add "stream":true,"stream_options":{"include_usage":true} to the body and use curl -N.
kvpick's "Request handled" lines appear below (JSON on stdout). Ctrl-C stops.

`,
  );
  let traffic: TrafficGenerator | null = null;
  if (values.traffic === true) {
    traffic = new TrafficGenerator({
      url: `http://127.0.0.1:${stack.front.port}`,
      model: sim.model,
      customers: (values["traffic-customers"] as number | undefined) ?? 16,
      systemPromptWords: (values["traffic-system-words"] as number | undefined) ?? 1500,
      questionWords: 40,
      maxTokens: (values["traffic-max-tokens"] as number | undefined) ?? 64,
      qps: Number(values["traffic-qps"] ?? 4) || 4,
      reportEveryMs: 5000,
      out: (line) => process.stderr.write(`${line}\n`),
    });
    traffic.start();
  }
  await Promise.race([once(process, "SIGTERM"), once(process, "SIGINT")]);
  await traffic?.stop();
  await stack.close();
  logger.flush();
  return 0;
}
