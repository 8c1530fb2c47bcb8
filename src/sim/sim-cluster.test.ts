// Pod addressing of the simulated cluster: with samePort every pod shares one port on its own loopback IP, as
// the pods of an InferencePool share its targetPort (bench/routing/flow-control-live.ts discovers them so).
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../../test/support/free-port.js";
import { parseConfig } from "../config/load.js";
import { createLogger } from "../observability/logger.js";
import { TokenizationService } from "../tokenization/tokenization-service.js";
import { LiveClock } from "./clock.js";
import { DEFAULT_ENGINE_CONFIG } from "./engine-config.js";
import { type SimClusterOptions, startSimCluster } from "./sim-cluster.js";

const logger = createLogger({ level: "silent" });
const tokenizer = new TokenizationService({ config: parseConfig({}).tokenizer, logger });
afterAll(() => tokenizer.stop());

const options = (o: Partial<SimClusterOptions>): SimClusterOptions => ({
  pods: 3,
  basePort: 0,
  ipMode: "loopback",
  firstHost: 171,
  model: "Qwen3-32B",
  engine: DEFAULT_ENGINE_CONFIG,
  hashAlgo: "sha256_cbor_64bit",
  hashSeed: "42",
  clock: new LiveClock(1),
  tokenizer,
  logger,
  kvEvents: { mode: "off" },
  ...o,
});

describe("sim cluster addressing", () => {
  it("puts every pod on the base port, each on its own loopback IP, with samePort", async () => {
    const port = await freePort("127.0.0.171");
    const cluster = await startSimCluster(options({ basePort: port, samePort: true }));
    try {
      expect(cluster.pods.map((p) => p.address)).toEqual([
        `127.0.0.171:${port}`,
        `127.0.0.172:${port}`,
        `127.0.0.173:${port}`,
      ]);
      for (const p of cluster.pods) expect((await fetch(`http://${p.address}/health`)).status).toBe(200);
    } finally {
      await cluster.close();
    }
  });

  it("refuses samePort where pods share an IP or the ports are free ones", async () => {
    await expect(startSimCluster(options({ basePort: 0, samePort: true }))).rejects.toThrow(/samePort/);
    await expect(
      startSimCluster(options({ basePort: 8001, samePort: true, ipMode: "single" })),
    ).rejects.toThrow(/samePort/);
  });
});
