// The simulated pods of `kvpick sim` and `kvpick demo` (and the tests that run them), from settings the
// sim command parses from its flags: one shared tokenizer, a live clock, N pods on loopback.
import { parseConfig } from "../config/load.js";
import type { HashAlgo } from "../config/schema.js";
import type { createLogger } from "../observability/logger.js";
import { TokenizationService } from "../tokenization/tokenization-service.js";
import { LiveClock } from "./clock.js";
import type { EngineConfig } from "./engine-config.js";
import type { EventLayout } from "./kv-event-encoder.js";
import type { ReplayLayout } from "./kv-event-replay-server.js";
import { type IpMode, type SimCluster, startSimCluster } from "./sim-cluster.js";
import type { SimFaults } from "./sim-pod.js";

export interface SimSettings {
  pods: number;
  basePort: number;
  /** Every pod on basePort (loopback mode; --same-port). */
  samePort: boolean;
  ipMode: IpMode;
  kvEvents: { mode: "connect"; endpoint: string } | { mode: "bind"; port: number } | { mode: "off" };
  eventLayout: EventLayout;
  /** vLLM replay sockets, or null without --kv-events-replay-port. */
  replay: { port: number; layout: ReplayLayout; bufferSteps: number } | null;
  timeScale: number;
  hashSeed: string;
  hashAlgo: HashAlgo;
  model: string;
  engine: EngineConfig;
  defaultMaxTokens: number;
  faults: SimFaults;
  logLevel: string;
}

/** Starts the pods of `s` (used by `kvpick sim` and `kvpick demo`). */
export async function startSim(
  s: SimSettings,
  logger: ReturnType<typeof createLogger>,
): Promise<{ cluster: SimCluster; tokenizer: TokenizationService }> {
  const tokenizer = new TokenizationService({ config: parseConfig({}).tokenizer, logger });
  try {
    const cluster = await startSimCluster({
      pods: s.pods,
      basePort: s.basePort,
      samePort: s.samePort,
      ipMode: s.ipMode,
      model: s.model,
      engine: s.engine,
      hashAlgo: s.hashAlgo,
      hashSeed: s.hashSeed,
      clock: new LiveClock(s.timeScale),
      tokenizer,
      logger,
      kvEvents: s.kvEvents,
      eventLayout: s.eventLayout,
      kvEventsReplay: s.replay,
      defaultMaxTokens: s.defaultMaxTokens,
      faults: s.faults,
    });
    return { cluster, tokenizer };
  } catch (err) {
    await tokenizer.stop();
    throw err;
  }
}
