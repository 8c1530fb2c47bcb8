// Token keys through the shared index: replica A indexes a pod whose seed nobody told kvpick (kvEvents.keys
// tokens: kvpick's own chain) and mirrors it to a real redis-server; replica B — another process, with an
// empty local index — hashes the same prompt and finds the pod's whole prefix in Redis. Proves the keys
// Redis stores are the token-key chain and that two replicas compute the same one.
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeBatch, seqFrame } from "../support/kv-event-publisher.js";
import { type RedisServer, startRedisServer } from "../support/redis-server.js";
import { parseConfig } from "../../src/config/load.js";
import { KvEventIngest } from "../../src/kv-events/ingest.js";
import { BlockHasher } from "../../src/kv-index/block-hash.js";
import { createCacheView } from "../../src/cache-view/cache-view.js";
import { BlockIndex } from "../../src/kv-index/block-index.js";
import { createLogger } from "../../src/observability/logger.js";
import { Metrics } from "../../src/observability/metrics.js";
import { createRedisSharedIndex } from "../../src/shared-index/redis-shared-index.js";
import { until } from "../support/until.js";

const WEIGHTS = { GPU: 1, CPU: 0.8 };
const BS = 16;
const POD = "10.0.0.7:8000";

let server: RedisServer;
const closers: (() => Promise<void>)[] = [];
beforeAll(async () => {
  server = await startRedisServer();
});
afterAll(async () => {
  for (const c of closers) await c();
  await server.stop();
});

const eventually = (check: () => Promise<boolean> | boolean, what: string) => until(check, what);

/** The request chain of `tokens` as another kvpick process computes it (keys tokens, no seed). */
function chainInOtherProcess(tokens: number[]): BigUint64Array {
  const url = new URL("../../src/kv-index/request-key-scheme.js", import.meta.url).href;
  const script = `
    import { RequestHasher, requestKeyScheme } from ${JSON.stringify(url)};
    const { LearntBlockSize } = await import(${JSON.stringify(new URL("../../src/kv-index/learnt-block-size.js", import.meta.url).href)});
    const { createLogger } = await import(${JSON.stringify(new URL("../../src/observability/logger.js", import.meta.url).href)});
    const ks = requestKeyScheme({ hashAlgo: "sha256_cbor", hashSeed: null, keys: "tokens" });
    const h = new RequestHasher(ks, new LearntBlockSize(${BS}, createLogger({ level: "silent" })), 4096);
    const tokens = JSON.parse(process.argv[1]);
    process.stdout.write(JSON.stringify({ scheme: ks.scheme, keys: Array.from(h.hash(tokens), String) }));`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script, JSON.stringify(tokens)], {
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(r.stderr);
  const out = JSON.parse(r.stdout) as { scheme: string; keys: string[] };
  expect(out.scheme).toBe("kvpick_mmh3_64");
  return BigUint64Array.from(out.keys, BigInt);
}

describe("token keys in the shared Redis index", () => {
  it("lets a second replica find a prefix the first one keyed from a pod's token ids", async () => {
    const config = parseConfig({
      tokenizer: {},
      index: { mediumWeights: WEIGHTS, redis: { url: server.url, lookupTimeoutMs: 2000 } },
    });
    const logger = createLogger({ level: "silent" });
    const index = new BlockIndex({ maxEntries: 1 << 16, mediumWeights: WEIGHTS });
    const a = createRedisSharedIndex({ config: config.index, index, logger, metrics: new Metrics() });
    const b = createRedisSharedIndex({
      config: config.index,
      index: new BlockIndex({ maxEntries: 1, mediumWeights: WEIGHTS }),
      logger,
      metrics: new Metrics(),
    });
    closers.push(
      () => a.stop(0),
      () => b.stop(0),
    );
    a.start();
    b.start();
    await eventually(() => a.link.up && b.link.up, "redis connections");
    // Replica B reads through the read model, with an empty local index: only Redis can answer.
    const viewB = createCacheView({
      index: new BlockIndex({ maxEntries: 1, mediumWeights: WEIGHTS }),
      shared: b.prefixSource,
    });
    const ingest = new KvEventIngest({
      index,
      logger,
      recorder: new Metrics().kvEvents,
      hash: { hashAlgo: "sha256_cbor", hashSeed: null, blockSize: BS, keys: "tokens" },
      mirror: a.mirror,
    });

    // The pod hashes with a seed kvpick was never told; two chained events of 3 and 2 blocks.
    const engine = new BlockHasher({ scheme: "sha256_cbor", hashSeed: "31337", blockSize: BS });
    const tokens = Array.from({ length: 5 * BS }, (_, i) => (i * 7919 + 11) % 151_000);
    const h = [...engine.hash(tokens)];
    ingest.handleMessage([
      Buffer.from(`kv@${POD}@m`),
      seqFrame(0n),
      encodeBatch(
        [
          {
            type: "BlockStored",
            hashes: h.slice(0, 3),
            parent: null,
            tokenIds: tokens.slice(0, 3 * BS),
            blockSize: BS,
          },
          {
            type: "BlockStored",
            hashes: h.slice(3),
            parent: h[2]!,
            tokenIds: tokens.slice(3 * BS),
            blockSize: BS,
          },
        ],
        { layout: "v0.10.2" },
      ),
    ]);

    const chain = chainInOtherProcess([...tokens, 1, 2, 3]);
    expect(chain.length).toBe(5);
    // Not the pod's own hashes: kvpick's chain.
    expect(chain[0]).not.toBe(h[0]);
    await eventually(async () => {
      const lookup = await viewB.lookupFor(chain);
      return lookup.matchPrefix(chain, [POD]).blocks[0] === 5;
    }, "replica B to see the pod's 5-block prefix in Redis");
    // A prompt that differs in block 1 shares only block 0.
    const other = chainInOtherProcess([...tokens.slice(0, BS), 9, ...tokens.slice(BS + 1)]);
    const lookup = await viewB.lookupFor(other);
    expect(lookup.matchPrefix(other, [POD]).blocks[0]).toBe(1);
  });
});
