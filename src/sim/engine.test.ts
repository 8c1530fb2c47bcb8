import { describe, expect, it } from "vitest";
import { BlockHasher } from "../kv-index/block-hash.js";
import { BlockManager } from "./block-manager.js";
import { LiveClock, type SimClock, VirtualClock } from "./clock.js";
import { Engine, type FinishedRequest } from "./engine.js";
import { DEFAULT_ENGINE_CONFIG, type EngineConfig, stepSeconds } from "./engine-config.js";
import type { SimKvEvent } from "./kv-event.js";

const hasher = new BlockHasher({ scheme: "sha256_cbor_64bit", hashSeed: "42", blockSize: 64 });

function makeEngine<C extends SimClock = VirtualClock>(
  over: Partial<EngineConfig> = {},
  clock: C = new VirtualClock() as unknown as C,
) {
  const config = { ...DEFAULT_ENGINE_CONFIG, ...over };
  const blocks = new BlockManager({ numGpuBlocks: config.numGpuBlocks, blockSize: config.blockSize });
  const batches: Array<{ events: SimKvEvent[]; time: number }> = [];
  const engine = new Engine({
    config,
    blocks,
    clock,
    onEvents: (events, time) => batches.push({ events, time }),
  });
  return { engine, clock, batches, config };
}

function request(
  id: string,
  prompt: number[],
  maxTokens: number,
  done: FinishedRequest[],
  tokens?: number[],
) {
  const fed = Uint32Array.from([...prompt, ...Array.from({ length: maxTokens - 1 }, (_, i) => 1000 + i)]);
  return {
    id,
    tokenIds: fed,
    chain: hasher.hash(fed),
    promptTokens: prompt.length,
    maxTokens,
    onToken: (_i: number, t: number) => tokens?.push(t),
    onFinish: (f: FinishedRequest) => done.push(f),
  };
}
const prompt = (seed: number, n: number) => Array.from({ length: n }, (_, i) => (seed * 7919 + i) % 150_000);

describe("Engine (virtual time)", () => {
  it("prefill time = overhead + uncached tokens / rate; a repeated prompt is served from cache", () => {
    const { engine, clock, config } = makeEngine();
    const done: FinishedRequest[] = [];
    const p = prompt(1, 6400);
    engine.add(request("a", p, 1, done));
    clock.run();
    expect(done[0]!.firstToken).toBeCloseTo(stepSeconds(config, 6400, 6400), 9);
    expect(done[0]!.cachedTokens).toBe(0);
    const t0 = clock.now();
    engine.add(request("b", p, 1, done));
    clock.run();
    // 99 of 100 blocks hit (the last token is always recomputed → the last block too).
    expect(done[1]!.cachedTokens).toBe(6336);
    expect(done[1]!.firstToken - t0).toBeCloseTo(stepSeconds(config, 64, 6400), 9);
    expect(engine.stats.prefixCacheHits).toBe(6336);
    expect(engine.stats.prefixCacheQueries).toBe(12_800);
  });

  it("schedules waiting requests by priority under schedulingPolicy priority, by arrival otherwise", () => {
    const firstTokens = (over: Partial<EngineConfig>) => {
      const { engine, clock } = makeEngine(over);
      const done: FinishedRequest[] = [];
      // Two 8,192-token batch prompts (one step each) arrive just before a short interactive one.
      engine.add({ ...request("b1", prompt(1, 8192), 1, done), priority: 0 });
      engine.add({ ...request("b2", prompt(2, 8192), 1, done), priority: 0 });
      engine.add({ ...request("i", prompt(3, 256), 1, done), priority: -1 });
      clock.run();
      return new Map(done.map((f) => [f.id, f.firstToken]));
    };
    const fcfs = firstTokens({});
    expect(fcfs.get("i")!).toBeGreaterThan(fcfs.get("b2")!);
    const prio = firstTokens({ schedulingPolicy: "priority" });
    // The interactive request takes the first step (with the first chunk of b1), ahead of both.
    expect(prio.get("i")!).toBeLessThan(prio.get("b1")!);
    expect(prio.get("i")!).toBeLessThan(fcfs.get("i")!);
    expect(prio.get("b1")!).toBeLessThan(prio.get("b2")!);
  });

  it("preempts the running request with the largest priority value under schedulingPolicy priority", () => {
    // 20 blocks of 64 tokens: three 6-block prompts fit, their decode growth does not; the newest running
    // request (FCFS's victim) is the urgent one, so the priority policy must pick another.
    const over = { numGpuBlocks: 21, schedulingPolicy: "priority" as const };
    const { engine, clock } = makeEngine(over);
    const done: FinishedRequest[] = [];
    engine.add({ ...request("low", prompt(1, 380), 200, done), priority: 5 });
    engine.add({ ...request("mid", prompt(2, 380), 200, done), priority: 1 });
    engine.add({ ...request("urgent", prompt(3, 380), 200, done), priority: 0 });
    clock.run();
    const by = new Map(done.map((f) => [f.id, f]));
    expect(by.get("urgent")!.preemptions).toBe(0);
    expect(by.get("low")!.preemptions).toBeGreaterThan(0);
  });

  it("honours max_tokens, and decode steps slow down as the batch grows", () => {
    const { engine, clock, config } = makeEngine();
    const done: FinishedRequest[] = [];
    const t1: number[] = [];
    engine.add(request("solo", prompt(2, 100), 20, done, t1));
    clock.run();
    expect(done[0]!.outputTokens).toBe(20);
    const soloItl = t1[10]! - t1[9]!;
    expect(soloItl).toBeCloseTo(stepSeconds(config, 1, 100 + 10), 9);
    const tb: number[] = [];
    for (let i = 0; i < 32; i++)
      engine.add(request(`b${i}`, prompt(10 + i, 100), 20, done, i === 0 ? tb : undefined));
    clock.run();
    const batchItl = tb[10]! - tb[9]!;
    expect(batchItl).toBeGreaterThan(soloItl);
    expect(batchItl).toBeCloseTo(stepSeconds(config, 32, 32 * 110), 9);
    expect(done.filter((d) => d.outputTokens === 20)).toHaveLength(33);
  });

  it("chunks long prefills by max-num-batched-tokens and caps the batch at max-num-seqs", () => {
    const { engine, clock, config } = makeEngine({ maxNumBatchedTokens: 1024, maxNumSeqs: 2 });
    const done: FinishedRequest[] = [];
    engine.add(request("long", prompt(3, 3000), 1, done));
    clock.run();
    // 3 chunks: 1024 + 1024 + 952.
    const expected =
      stepSeconds(config, 1024, 1024) + stepSeconds(config, 1024, 2048) + stepSeconds(config, 952, 3000);
    expect(done[0]!.firstToken).toBeCloseTo(expected, 9);
    for (let i = 0; i < 3; i++) engine.add(request(`s${i}`, prompt(20 + i, 10), 5, done));
    expect(engine.numWaiting).toBe(3);
    clock.run(clock.now() + 1e-6);
    expect(engine.numRunning).toBe(2);
    expect(engine.numWaiting).toBe(1);
    clock.run();
    expect(done).toHaveLength(4);
  });

  it("caps each request's prefill chunk at longPrefillTokenThreshold, so two prompts share a step", () => {
    const { engine, clock, config } = makeEngine({ longPrefillTokenThreshold: 512 });
    const done: FinishedRequest[] = [];
    engine.add(request("a", prompt(5, 1200), 1, done));
    engine.add(request("b", prompt(6, 300), 1, done));
    clock.run();
    // Step 1: a 512 + b 300 (b done); step 2: a 512; step 3: a 176. Without the cap: one step of 1,500.
    const first = stepSeconds(config, 812, 812);
    expect(done.find((f) => f.id === "b")!.firstToken).toBeCloseTo(first, 9);
    const a = first + stepSeconds(config, 512, 1024) + stepSeconds(config, 176, 1200);
    expect(done.find((f) => f.id === "a")!.firstToken).toBeCloseTo(a, 9);
  });

  it("queues when the KV cache is full, preempts under decode pressure, and events match the pool", () => {
    const { engine, clock, batches } = makeEngine({ numGpuBlocks: 12 }); // 11 usable blocks
    const done: FinishedRequest[] = [];
    for (let i = 0; i < 4; i++) engine.add(request(`r${i}`, prompt(30 + i, 150), 120, done));
    clock.run();
    expect(done.map((d) => d.outputTokens)).toEqual([120, 120, 120, 120]);
    expect(engine.stats.preemptions).toBeGreaterThan(0);
    // Replaying the events reproduces exactly the pool's cached set.
    const live = new Map<bigint, number>();
    for (const b of batches)
      for (const e of b.events) {
        if (e.type === "BlockStored") for (const h of e.hashes) live.set(h, (live.get(h) ?? 0) + 1);
        if (e.type === "BlockRemoved") {
          const n = live.get(e.hashes[0]!)! - 1;
          if (n === 0) live.delete(e.hashes[0]!);
          else live.set(e.hashes[0]!, n);
        }
      }
    expect(live.size).toBe(engine.blocks.cachedHashes);
    // Batches are published at step schedule times, in order.
    for (let i = 1; i < batches.length; i++)
      expect(batches[i]!.time).toBeGreaterThanOrEqual(batches[i - 1]!.time);
  });

  it("aborts free their blocks", () => {
    const { engine, clock } = makeEngine();
    const done: FinishedRequest[] = [];
    engine.add(request("x", prompt(5, 640), 100, done));
    clock.run(0.5);
    expect(engine.blocks.freeBlocks).toBeLessThan(4801);
    expect(engine.abort("x")).toBe(true);
    expect(done[0]!.aborted).toBe(true);
    expect(engine.blocks.freeBlocks).toBe(4801);
    clock.run();
  });

  it("rejects requests that can never fit", () => {
    const { engine } = makeEngine({ maxModelLen: 1000 });
    expect(() => engine.add(request("big", prompt(6, 900), 200, []))).toThrow(/max_model_len/);
  });
});

describe("Engine (live time, scaled)", () => {
  it("keeps simulated durations at any time scale", async () => {
    const clock = new LiveClock(1000);
    const { engine, config } = makeEngine({}, clock);
    const done: FinishedRequest[] = [];
    const finished = new Promise<void>((resolve) =>
      engine.add({
        ...request("a", prompt(7, 6400), 3, done),
        onFinish: (f) => {
          done.push(f);
          resolve();
        },
      }),
    );
    await finished;
    const f = done[0]!;
    // Logical step times: the first token comes exactly one prefill step after scheduling.
    expect(f.firstToken - f.firstScheduled).toBeCloseTo(stepSeconds(config, 6400, 6400), 9);
    expect(f.finished - f.firstToken).toBeCloseTo(
      stepSeconds(config, 1, 6401) + stepSeconds(config, 1, 6402),
      9,
    );
  });
});
