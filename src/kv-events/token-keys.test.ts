// Token-keyed indexing through the whole ingest: pods publish under a seed / algo kvpick was not told, and
// the index must hold kvpick's own keys — the request chain — resolved through the per-pod map.
import { describe, expect, it } from "vitest";
import { encodeBatch, type EventSpec, type Layout, seqFrame } from "../../test/support/kv-event-publisher.js";
import type { HashAlgo, KeyMode } from "../config/schema.js";
import { BlockHasher, type BlockExtras, type HashScheme } from "../kv-index/block-hash.js";
import { BlockIndex } from "../kv-index/block-index.js";
import { LearntBlockSize } from "../kv-index/learnt-block-size.js";
import { RequestHasher, requestKeyScheme } from "../kv-index/request-key-scheme.js";
import { createLogger } from "../observability/logger.js";
import { Registry } from "prom-client";
import { KvEventsMetrics } from "../observability/kv-events-metrics.js";
import { blockStoredEvent } from "./decode.js";
import { HashCheck } from "./hash-check.js";
import { KvEventIngest } from "./ingest.js";

const BS = 4;
const POD = "10.0.0.1";
const TOPIC = `kv@${POD}@m`;
const tokens = (n: number, from = 0) => Array.from({ length: n * BS }, (_, i) => from + i);

function setup(opts: { keys: KeyMode; hashSeed?: string | null; hashAlgo?: HashAlgo; maxEntries?: number }) {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: "info",
    destination: { write: (s: string) => lines.push(JSON.parse(s)) },
  });
  const metrics = new KvEventsMetrics(new Registry());
  const index = new BlockIndex({
    maxEntries: opts.maxEntries ?? 10_000,
    mediumWeights: { GPU: 1, CPU: 0.8 },
  });
  const hash = {
    hashAlgo: opts.hashAlgo ?? "sha256_cbor_64bit",
    hashSeed: opts.hashSeed === undefined ? null : opts.hashSeed,
    blockSize: BS,
    keys: opts.keys,
  };
  const ingest = new KvEventIngest({ index, logger, recorder: metrics, hash });
  const ks = requestKeyScheme(hash);
  const request = new BlockHasher({
    scheme: ks.scheme,
    hashSeed: ks.hashSeed,
    blockSize: BS,
  });
  let seq = 0;
  const send = (events: EventSpec[], layout: Layout = "v0.10.2") =>
    ingest.handleMessage([Buffer.from(TOPIC), seqFrame(seq++), encodeBatch(events, { layout })]);
  /** Blocks of `toks` (from block 0) the pod holds, as the request path asks. */
  const held = (toks: number[], extras?: BlockExtras) =>
    index.matchPrefix(request.hash(toks, extras), [POD]).blocks[0]!;
  return { lines, metrics, index, ingest, send, held, request };
}

/** A pod's engine: its own seed and algo. */
const engine = (scheme: HashScheme, seed: string) =>
  new BlockHasher({ scheme, hashSeed: seed, blockSize: BS });

describe("token keys (kvEvents.keys)", () => {
  for (const scheme of ["sha256_cbor", "xxhash_cbor", "sha256_cbor_64bit"] as const) {
    it(`indexes a ${scheme} pod with an unknown seed by the request chain, parents through the map`, () => {
      const t = setup({ keys: "tokens" });
      const e = engine(scheme, "1234");
      const toks = tokens(5);
      const h = [...e.hash(toks)];
      t.send([
        {
          type: "BlockStored",
          hashes: h.slice(0, 2),
          parent: null,
          tokenIds: toks.slice(0, 2 * BS),
          blockSize: BS,
        },
        {
          type: "BlockStored",
          hashes: h.slice(2),
          parent: h[1]!,
          tokenIds: toks.slice(2 * BS),
          blockSize: BS,
        },
      ]);
      expect(t.held(toks)).toBe(5);
      // The engine's own values are not what the index holds.
      expect(t.index.matchPrefix(new BigUint64Array(h), [POD]).blocks[0]).toBe(0);
    });
  }

  it("does not index blocks whose parent it never saw, and counts them", async () => {
    const t = setup({ keys: "tokens" });
    const e = engine("sha256_cbor", "9");
    const toks = tokens(4);
    const h = [...e.hash(toks)];
    t.send([
      {
        type: "BlockStored",
        hashes: h.slice(2),
        parent: h[1]!,
        tokenIds: toks.slice(2 * BS),
        blockSize: BS,
      },
    ]);
    expect(t.index.stats().entries).toBe(0);
    const got = await t.metrics.kvTokenKeysSkipped.get();
    expect(got.values.find((v) => v.labels.reason === "unknown-parent")?.value).toBe(2);
    // A later event supplying the parent makes the next children a prefix again.
    t.send([
      {
        type: "BlockStored",
        hashes: h.slice(0, 2),
        parent: null,
        tokenIds: toks.slice(0, 2 * BS),
        blockSize: BS,
      },
    ]);
    t.send([
      {
        type: "BlockStored",
        hashes: h.slice(2),
        parent: h[1]!,
        tokenIds: toks.slice(2 * BS),
        blockSize: BS,
      },
    ]);
    expect(t.held(toks)).toBe(4);
  });

  it("removes a block through the map, keeping a second reference until its last removal", () => {
    const t = setup({ keys: "tokens" });
    const e = engine("xxhash_cbor", "s");
    const toks = tokens(3);
    const h = [...e.hash(toks)];
    const store: EventSpec = {
      type: "BlockStored",
      hashes: h,
      parent: null,
      tokenIds: toks,
      blockSize: BS,
    };
    t.send([store, store], "map");
    t.send([{ type: "BlockRemoved", hashes: [h[1]!] }], "map");
    expect(t.held(toks)).toBe(3); // one copy left
    t.send([{ type: "BlockRemoved", hashes: [h[1]!] }], "map");
    expect(t.held(toks)).toBe(1);
    // The removed block's mapping is gone: a child stored under it now has an unknown parent.
    t.send([
      {
        type: "BlockStored",
        hashes: [h[2]!],
        parent: h[1]!,
        tokenIds: toks.slice(2 * BS),
        blockSize: BS,
      },
    ]);
    expect(t.index.stats().entries).toBe(2);
  });

  it("forgets the map on AllBlocksCleared and when the pod leaves", () => {
    const t = setup({ keys: "tokens" });
    const e = engine("sha256_cbor", "x");
    const toks = tokens(2);
    const h = [...e.hash(toks)];
    const root: EventSpec = {
      type: "BlockStored",
      hashes: [h[0]!],
      parent: null,
      tokenIds: toks.slice(0, BS),
      blockSize: BS,
    };
    const child: EventSpec = {
      type: "BlockStored",
      hashes: [h[1]!],
      parent: h[0]!,
      tokenIds: toks.slice(BS),
      blockSize: BS,
    };
    t.send([root, { type: "AllBlocksCleared" }, child]);
    expect(t.index.stats().entries).toBe(0);
    t.send([root]);
    t.ingest.forgetPod(POD);
    t.send([child]);
    expect(t.index.stats().entries).toBe(0);
  });

  it("keeps the map no larger than the pod's index entries when the index evicts", async () => {
    const t = setup({ keys: "tokens", maxEntries: 64 });
    const e = engine("sha256_cbor", "x");
    const toks = tokens(200);
    const h = [...e.hash(toks)];
    for (let i = 0; i < 200; i += 10)
      t.send([
        {
          type: "BlockStored",
          hashes: h.slice(i, i + 10),
          parent: i === 0 ? null : h[i - 1]!,
          tokenIds: toks.slice(i * BS, (i + 10) * BS),
          blockSize: BS,
        },
      ]);
    const entries = t.index.stats().entries;
    expect(entries).toBeLessThanOrEqual(64);
    const evictedBlocks = 200 - entries;
    expect(evictedBlocks).toBeGreaterThan(0);
    // Evicted oldest first: the newest blocks are still removable through the map.
    const before = t.index.stats().entries;
    t.send([{ type: "BlockRemoved", hashes: [h[199]!] }]);
    expect(t.index.stats().entries).toBe(before - 1);
    // The map went with the index: the oldest block's mapping is gone, so a child of it is not a prefix.
    t.send([
      {
        type: "BlockStored",
        hashes: [h[1]!],
        parent: h[0]!,
        tokenIds: toks.slice(BS, 2 * BS),
        blockSize: BS,
      },
    ]);
    const got = await t.metrics.kvTokenKeysSkipped.get();
    expect(got.values.find((v) => v.labels.reason === "unknown-parent")?.value).toBe(1);
  });

  it("keys LoRA names and extra_keys (cache_salt) as the request side hashes them", () => {
    const t = setup({ keys: "tokens" });
    const e = engine("sha256_cbor", "77");
    const toks = tokens(3);
    const salted = [...e.hash(toks, { cacheSalt: "tenant-a" })];
    t.send(
      [
        {
          type: "BlockStored",
          hashes: salted,
          parent: null,
          tokenIds: toks,
          blockSize: BS,
          extraKeys: [["tenant-a"], null, null],
        },
      ],
      "map",
    );
    expect(t.held(toks, { cacheSalt: "tenant-a" })).toBe(3);
    expect(t.held(toks)).toBe(0);
    const lora = [...e.hash(toks, { lora: "my-lora" })];
    t.send(
      [
        {
          type: "BlockStored",
          hashes: lora,
          parent: null,
          tokenIds: toks,
          blockSize: BS,
          loraName: "my-lora",
        },
      ],
      "lora_name",
    );
    expect(t.held(toks, { lora: "my-lora" })).toBe(3);
  });

  it("auto: keeps engine hashes while the root check agrees (no map), switches once when it does not", () => {
    const ok = setup({ keys: "auto", hashSeed: "42", hashAlgo: "sha256_cbor" });
    const toks = tokens(3);
    const h = [...engine("sha256_cbor", "42").hash(toks)];
    ok.send([
      {
        type: "BlockStored",
        hashes: h,
        parent: null,
        tokenIds: toks,
        blockSize: BS,
      },
    ]);
    expect(ok.held(toks)).toBe(3);
    expect(ok.lines.filter((l) => String(l.msg).includes("token keys"))).toHaveLength(0);

    const off = setup({
      keys: "auto",
      hashSeed: "42",
      hashAlgo: "sha256_cbor",
    });
    const other = [...engine("sha256_cbor", "43").hash(toks)];
    off.send([
      {
        type: "BlockStored",
        hashes: other,
        parent: null,
        tokenIds: toks,
        blockSize: BS,
      },
    ]);
    off.send([
      {
        type: "BlockStored",
        hashes: other,
        parent: null,
        tokenIds: toks,
        blockSize: BS,
      },
    ]);
    expect(off.held(toks)).toBe(3);
    expect(off.lines.filter((l) => String(l.msg).includes("token keys"))).toHaveLength(1);
    // A token-keyed pod is not degraded by its (expected) hash mismatch.
    expect(off.ingest.accuracy(POD)).toBe("exact");
  });

  it("engine: indexes the pods' hashes as they come (today's behaviour)", () => {
    const t = setup({ keys: "engine", hashSeed: "42" });
    const toks = tokens(2);
    const other = [...engine("sha256_cbor_64bit", "5").hash(toks)];
    t.send([
      {
        type: "BlockStored",
        hashes: other,
        parent: null,
        tokenIds: toks,
        blockSize: BS,
      },
    ]);
    expect(t.held(toks)).toBe(0);
    expect(t.index.matchPrefix(new BigUint64Array(other), [POD]).blocks[0]).toBe(2);
  });
});

describe("token keys with the block size learnt from the events (tokenizer.blockSize unset)", () => {
  function learning(keys: KeyMode, hashSeed: string | null = null) {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger({
      level: "info",
      destination: { write: (s: string) => lines.push(JSON.parse(s)) },
    });
    const metrics = new KvEventsMetrics(new Registry());
    const index = new BlockIndex({ maxEntries: 10_000, mediumWeights: { GPU: 1, CPU: 0.8 } });
    const sizes = new LearntBlockSize(null, logger);
    const hash = {
      hashAlgo: "sha256_cbor_64bit" as const,
      hashSeed,
      blockSize: null,
      keys,
      blockSizes: sizes,
    };
    const ingest = new KvEventIngest({ index, logger, recorder: metrics, hash });
    const request = new RequestHasher(requestKeyScheme(hash), sizes);
    const seqs = new Map<string, number>();
    const send = (pod: string, events: EventSpec[]) => {
      const seq = seqs.get(pod) ?? 0;
      seqs.set(pod, seq + 1);
      ingest.handleMessage([Buffer.from(`kv@${pod}@m`), seqFrame(seq), encodeBatch(events)]);
    };
    const held = (pod: string, toks: number[]) => index.matchPrefix(request.hash(toks), [pod]).blocks[0]!;
    return { lines, metrics, index, sizes, send, held, request };
  }

  it("learns the size from the first BlockStored and keys its blocks with it", () => {
    const t = learning("tokens");
    const e = engine("sha256_cbor", "777");
    const toks = tokens(3);
    expect(t.request.blockSize).toBeNull();
    t.send("10.0.0.1", [
      { type: "BlockStored", hashes: [...e.hash(toks)], parent: null, tokenIds: toks, blockSize: BS },
    ]);
    expect(t.sizes.value).toBe(BS);
    expect(t.held("10.0.0.1", toks)).toBe(3);
    expect(t.lines.filter((l) => l.msg === `block size learnt: ${BS} from BlockStored`)).toHaveLength(1);
  });

  it("skips and counts the blocks of a pod with another size, warning once", async () => {
    const t = learning("auto", "42");
    const toks = tokens(2);
    const mine = engine("sha256_cbor_64bit", "42");
    t.send("10.0.0.1", [
      { type: "BlockStored", hashes: [...mine.hash(toks)], parent: null, tokenIds: toks, blockSize: BS },
    ]);
    // Pod 2 runs 8-token blocks: the same tokens are one block there.
    const other = new BlockHasher({ scheme: "sha256_cbor_64bit", hashSeed: "42", blockSize: 2 * BS });
    for (let i = 0; i < 2; i++)
      t.send("10.0.0.2", [
        {
          type: "BlockStored",
          hashes: [...other.hash(toks)],
          parent: null,
          tokenIds: toks,
          blockSize: 2 * BS,
        },
      ]);
    expect(t.sizes.value).toBe(BS);
    expect(t.held("10.0.0.1", toks)).toBe(2);
    expect(t.index.hasPod("10.0.0.2")).toBe(false);
    const got = await t.metrics.kvTokenKeysSkipped.get();
    const skipped = got.values.find((v) => v.labels.pod === "10.0.0.2" && v.labels.reason === "block-size");
    expect(skipped?.value).toBe(2);
    expect(
      t.lines.filter((l) => l.pod === "10.0.0.2" && String(l.msg).includes("different block size")),
    ).toHaveLength(1);
  });

  it("learns the size from token_ids over block_hashes when the event has no block_size", () => {
    const logger = createLogger({ level: "silent" });
    const sizes = new LearntBlockSize(null, logger);
    const check = new HashCheck(
      { hashAlgo: "sha256_cbor_64bit", hashSeed: null, blockSize: null, keys: "tokens", blockSizes: sizes },
      logger,
      new KvEventsMetrics(new Registry()),
    );
    const ev = blockStoredEvent({
      blockHashes: new BigUint64Array([1n, 2n, 3n]),
      tokenIds: new Uint32Array(3 * 16),
      medium: "GPU",
      groupIdx: 0,
    });
    check.check("10.0.0.1", { ...ev, tokenIds: new Uint32Array(0) }); // no tokens: nothing to learn from
    expect(sizes.value).toBeNull();
    check.check("10.0.0.1", ev);
    expect(sizes.value).toBe(16);
  });
});
