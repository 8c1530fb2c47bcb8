// N simulated pods sharing one tokenizer and clock. Addressing (documented choice):
// - "loopback" (default where the OS allows it, e.g. Linux): pod i listens on its own loopback IP
//   127.0.0.(101+i), port basePort+i, topic kv@127.0.0.(101+i)@<model> — the reference topic shape, so
//   kvpick names pods by IP exactly as in a cluster. In connect mode pod i binds tcp://<its ip>:<port>.
// - "single": every pod on 127.0.0.1 with distinct ports, topic kv@127.0.0.1:<port>@<model> (the llm-d
//   ip:port pod id). Connect mode then binds port+i per pod (kvpick's connect mode dials one port per IP,
//   so it cannot follow; use bind mode).
// - "auto": loopback if 127.0.0.101 can be bound (macOS needs `ifconfig lo0 alias`), else single.
// The replay socket (vLLM's replay_endpoint) follows the PUB's rule: tcp://<pod ip>:<replay port> in loopback
// mode (what kvpick's kvEvents.replayPort dials), replay port + i in single mode (kvpick cannot follow).
import { createServer } from "node:net";
import type { HashAlgo } from "../config/schema.js";
import type { Logger } from "../observability/logger.js";
import type { TokenizationService } from "../tokenization/tokenization-service.js";
import type { SimClock } from "./clock.js";
import type { EngineConfig } from "./engine-config.js";
import type { EventLayout } from "./kv-event-encoder.js";
import type { ReplayLayout } from "./kv-event-replay-server.js";
import { loadOutputVocabulary } from "./output-vocabulary.js";
import { type SimFaults, SimPod } from "./sim-pod.js";

export type IpMode = "auto" | "loopback" | "single";

export interface SimClusterOptions {
  pods: number;
  /** First HTTP port (pod i: basePort + i); 0 = free ports. */
  basePort: number;
  /**
   * Loopback mode only: every pod on basePort (each has its own IP), as the pods of an InferencePool share
   * its targetPort, so a Kubernetes-discovered pool can name them.
   */
  samePort?: boolean;
  ipMode: IpMode;
  /** First loopback host number in loopback mode (pod i: 127.0.0.(firstHost + i)). */
  firstHost?: number;
  model: string;
  engine: EngineConfig;
  hashAlgo: HashAlgo;
  hashSeed: string;
  clock: SimClock;
  tokenizer: TokenizationService;
  logger: Logger;
  /** "connect" to the EPP's bound SUB at `endpoint`, "bind" each pod's PUB on `port`, or no events. */
  kvEvents: { mode: "connect"; endpoint: string } | { mode: "bind"; port: number } | { mode: "off" };
  eventLayout?: EventLayout;
  /** vLLM replay sockets: one ROUTER per pod on `port` (single mode: port + i); null/absent = none. */
  kvEventsReplay?: { port: number; layout?: ReplayLayout; bufferSteps?: number } | null;
  defaultMaxTokens?: number;
  faults?: Partial<SimFaults>;
}

export interface SimCluster {
  pods: SimPod[];
  ipMode: "loopback" | "single";
  close(): Promise<void>;
}

/** Whether this OS routes 127.0.0.x beyond 127.0.0.1 to loopback (Linux does; macOS only with aliases). */
export async function canBindLoopback(ip = "127.0.0.101"): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(0, ip, () => s.close(() => resolve(true)));
  });
}

export async function startSimCluster(o: SimClusterOptions): Promise<SimCluster> {
  const ipMode = o.ipMode === "auto" ? ((await canBindLoopback()) ? "loopback" : "single") : o.ipMode;
  if (o.samePort === true && (ipMode !== "loopback" || o.basePort === 0))
    throw new Error("samePort needs loopback ip mode and a base port");
  const vocabulary = await loadOutputVocabulary(o.tokenizer, o.model);
  const firstHost = o.firstHost ?? 101;
  const pods: SimPod[] = [];
  try {
    for (let i = 0; i < o.pods; i++) {
      const ip = ipMode === "loopback" ? `127.0.0.${firstHost + i}` : "127.0.0.1";
      const port = o.basePort === 0 ? 0 : o.samePort === true ? o.basePort : o.basePort + i;
      const kv = o.kvEvents;
      const endpoint =
        kv.mode === "connect"
          ? kv.endpoint
          : kv.mode === "bind"
            ? `tcp://${ip}:${ipMode === "loopback" ? kv.port : kv.port + i}`
            : null;
      const replay = o.kvEventsReplay;
      const replayPort = replay == null ? 0 : ipMode === "loopback" ? replay.port : replay.port + i;
      const pod = new SimPod({
        ip,
        port,
        model: o.model,
        engine: o.engine,
        hashAlgo: o.hashAlgo,
        hashSeed: o.hashSeed,
        clock: o.clock,
        tokenizer: o.tokenizer,
        vocabulary,
        logger: o.logger,
        kvEventsEndpoint: endpoint,
        topicPodId: ipMode === "loopback" ? "ip" : "ip:port",
        ...(o.eventLayout === undefined ? {} : { eventLayout: o.eventLayout }),
        ...(replay == null
          ? {}
          : {
              kvEventsReplay: { ...replay, endpoint: `tcp://${ip}:${replayPort === 0 ? "*" : replayPort}` },
            }),
        ...(o.defaultMaxTokens === undefined ? {} : { defaultMaxTokens: o.defaultMaxTokens }),
        ...(o.faults === undefined ? {} : { faults: o.faults }),
        seed: 1000 + i,
      });
      // Bind mode needs the HTTP port first when topics name ip:port; start() does both in order.
      pods.push(await pod.start());
    }
  } catch (err) {
    await Promise.allSettled(pods.map((p) => p.close()));
    throw err;
  }
  return {
    pods,
    ipMode,
    async close() {
      await Promise.allSettled(pods.map((p) => p.close()));
    },
  };
}
