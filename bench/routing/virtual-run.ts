// One policy × one workload in virtual time: 8 simulated vLLM engines (src/sim Engine + BlockManager on a
// VirtualClock), load metrics recorded every scrape interval into kvpick's EndpointStore (on the virtual
// clock, so staleness and dispatch credit behave as in production), and — for the policies that use KV
// events — every engine step's events encoded with the simulator's msgspec encoder and handed, after a
// configurable delay, to the production KvEventIngest.handleMessage → BlockIndex path.
import { pino } from "pino";
import { parseConfig } from "../../src/config/load.js";
import { EndpointStore } from "../../src/endpoints/endpoint-store.js";
import { KvEventIngest } from "../../src/kv-events/ingest.js";
import { BlockHasher } from "../../src/kv-index/block-hash.js";
import { BlockIndex } from "../../src/kv-index/block-index.js";
import { Metrics } from "../../src/observability/metrics.js";
import { BlockManager } from "../../src/sim/block-manager.js";
import { VirtualClock } from "../../src/sim/clock.js";
import type { EngineConfig } from "../../src/sim/engine-config.js";
import { Engine, type FinishedRequest } from "../../src/sim/engine.js";
import { KvEventEncoder } from "../../src/sim/kv-event-encoder.js";
import { seededRng } from "../../src/sim/random.js";
import {
  FlowController,
  type Admission,
  type FlowControlSettings,
} from "../../src/flow-control/flow-controller.js";
import type { EppError } from "../../src/errors.js";
import { type BenchRequest, createPolicy, needsEvents, type PolicyName } from "./policies.js";
import { outputTokens, type Session, type Workload } from "./workloads.js";

export interface RunOptions {
  workload: Workload;
  policy: PolicyName;
  seed: number;
  pods: number;
  engine: EngineConfig;
  /** Virtual seconds between an engine step and its events reaching kvpick's index. */
  eventDelaySeconds: number;
  /** Virtual seconds between load-metric snapshots (kvpick default 50 ms). */
  scrapeIntervalSeconds: number;
  hashSeed: string;
  model: string;
  /**
   * Client concurrency cap (inference-perf's workers × worker concurrency): arrivals beyond it wait at the
   * client, FIFO, and TTFT is measured from the moment the request is sent. Infinity = open loop.
   */
  maxInFlight: number;
  /**
   * Flow control in front of the policy (sessions' tenant / priority); absent or null = off. `objectives`
   * resolves the sessions' `priority-<n>` objectives; `forwardPriority` hands the engines vLLM's request
   * `priority` (the admitted priority negated: vLLM serves lower values first) — a what-if for pods run with
   * `--scheduling-policy priority`; kvpick does not write it into real requests (bench/README.md).
   */
  flowControl?:
    | (FlowControlSettings & {
        objectives?: Readonly<Record<string, number>>;
        forwardPriority?: boolean;
      })
    | null;
}

/** A request flow control answered with an error instead of routing it. */
export interface RejectedRecord {
  tenant: string;
  arrival: number;
  code: EppError["code"];
  status: number;
  /** Seconds it spent in flow control before the answer. */
  queueWait: number;
}

export interface RequestRecord {
  stage: number;
  arrival: number;
  /** Seconds the request waited at the client for a concurrency slot. */
  clientWait: number;
  ttft: number;
  finished: number;
  promptTokens: number;
  cachedTokens: number;
  outputTokens: number;
  preemptions: number;
  pod: number;
  /** Flow-control tenant ("" without flow-control tags) and seconds waited in its queue. */
  tenant?: string;
  queueWait?: number;
}

export interface RunResult {
  policy: PolicyName;
  records: RequestRecord[];
  /** Requests flow control answered 429/503 (empty with flow control off). */
  rejected?: RejectedRecord[];
  /** Output tokens generated per virtual second since the workload's t = 0. */
  tokensPerSecond: number[];
  /** Per stage: mean over scrape ticks of the mean waiting queue per pod. */
  stageMeanWaiting: number[];
  meanWaiting: number;
  /** Virtual seconds from t = 0 to the last request's end. */
  makespan: number;
  wallSeconds: number;
  routingSeconds: number;
  eventBatches: number;
  indexEntriesAtEnd: number;
}

const silentLogger = pino({ level: "silent" });
const podAddress = (i: number) => `10.0.0.${i + 1}:8000`;
const podIp = (i: number) => `10.0.0.${i + 1}`;

/** Token id → 4 characters, the ~4 chars per token GIE's character blocks assume. */
const renderCache = new WeakMap<Uint32Array, string>();
function render(tokens: Uint32Array): string {
  let s = renderCache.get(tokens);
  if (s !== undefined) return s;
  const parts: string[] = new Array(tokens.length);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    parts[i] = String.fromCharCode(
      97 + (t % 26),
      97 + (Math.floor(t / 26) % 26),
      97 + (Math.floor(t / 676) % 26),
      t % 7 === 0 ? 32 : 97 + (Math.floor(t / 17_576) % 26),
    );
  }
  s = parts.join("");
  renderCache.set(tokens, s);
  return s;
}

function concat(parts: readonly Uint32Array[], extra = 0): Uint32Array {
  const out = new Uint32Array(parts.reduce((n, p) => n + p.length, 0) + extra);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function runVirtual(o: RunOptions): RunResult {
  const wallStart = performance.now();
  const clock = new VirtualClock();
  const rng = seededRng(o.seed ^ 0x2545f491);
  const hasher = new BlockHasher({
    scheme: "sha256_cbor_64bit",
    hashSeed: o.hashSeed,
    blockSize: o.engine.blockSize,
    memoBlocks: 1 << 17,
  });
  const config = parseConfig({ tokenizer: { hashSeed: o.hashSeed, blockSize: o.engine.blockSize } });
  const index = new BlockIndex({
    maxEntries: config.index.maxEntries,
    mediumWeights: config.index.mediumWeights,
  });
  const ingest = new KvEventIngest({
    index,
    logger: silentLogger,
    recorder: new Metrics().kvEvents,
    hash: config.tokenizer,
  });
  const events = needsEvents(o.policy);
  const isIdeal = o.policy === "ideal";

  // The ideal bound's pods hold every shared prefix on top of their normal capacity (4× its blocks, so the
  // LRU churn of private blocks does not push the warm set out).
  const warm = o.workload.sharedPrefixes.map((parts) => concat(parts));
  const prefixBlocks = 4 * warm.reduce((n, p) => n + Math.ceil(p.length / o.engine.blockSize), 0);
  const engineConfig: EngineConfig = isIdeal
    ? { ...o.engine, numGpuBlocks: o.engine.numGpuBlocks + prefixBlocks }
    : o.engine;

  let eventBatches = 0;
  const engines: Engine[] = [];
  for (let p = 0; p < o.pods; p++) {
    const topic = new TextEncoder().encode(`kv@${podIp(p)}@${o.model}`);
    const encoder = new KvEventEncoder({ layout: "v0.10.0" });
    let seq = 0n;
    engines.push(
      new Engine({
        config: engineConfig,
        blocks: new BlockManager({
          numGpuBlocks: engineConfig.numGpuBlocks,
          blockSize: engineConfig.blockSize,
        }),
        clock,
        ...(events
          ? {
              onEvents: (evs, time) => {
                const payload = encoder.encode({ ts: clock.epochSeconds(time), events: evs });
                const seqFrame = new Uint8Array(8);
                new DataView(seqFrame.buffer).setBigUint64(0, seq++);
                const frames = [topic, seqFrame, payload];
                eventBatches++;
                clock.setTimer(o.eventDelaySeconds, () => ingest.handleMessage(frames));
              },
            }
          : {}),
      }),
    );
  }

  // Ideal: warm every pod with every shared prefix before the workload starts.
  if (isIdeal) {
    warm.forEach((sys, g) => {
      const chain = hasher.hash(sys);
      engines.forEach((e, p) => {
        e.add({ id: `warm-${g}-${p}`, tokenIds: sys, chain, promptTokens: sys.length, maxTokens: 1 });
      });
    });
    clock.run();
  }
  const t0 = clock.now() + (isIdeal ? 1 : 0);

  // Load metrics as kvpick's scraper would have read them at its last tick, in kvpick's own store.
  const nowMs = () => clock.now() * 1000;
  const store = new EndpointStore({ now: nowMs, staleAfterMs: 2000 });
  store.replaceAll(
    engines.map((_, i) => ({ address: podAddress(i), ip: podIp(i), port: 8000, name: null, ready: true })),
  );
  const scrape = () => {
    engines.forEach((e, i) => {
      store.recordMetrics(podAddress(i), {
        waiting: e.numWaiting,
        running: e.numRunning,
        kvCacheUsage: e.blocks.usage(),
        blockSize: o.engine.blockSize,
        numGpuBlocks: o.engine.numGpuBlocks,
        prefixCachingHashAlgo: "sha256_cbor_64bit",
        lora: null,
      });
    });
  };
  scrape();

  const policy = createPolicy(o.policy, {
    pods: o.pods,
    engines,
    endpoints: store,
    rng,
    index,
    blockSize: o.engine.blockSize,
    now: nowMs,
  });

  const stageEnds: number[] = [];
  o.workload.stages.reduce((acc, s) => {
    stageEnds.push(acc + s.seconds);
    return acc + s.seconds;
  }, 0);
  const loadEnd = stageEnds[stageEnds.length - 1] ?? 0;
  const waitSum = new Float64Array(o.workload.stages.length);
  const waitCount = new Float64Array(o.workload.stages.length);
  let sessionsLeft = o.workload.sessions.length;
  let stageIdx = 0;
  const tick = () => {
    scrape();
    const t = clock.now() - t0;
    while (stageIdx < stageEnds.length - 1 && t >= stageEnds[stageIdx]!) stageIdx++;
    if (t < loadEnd) {
      let w = 0;
      for (const e of engines) w += e.numWaiting;
      waitSum[stageIdx]! += w / o.pods;
      waitCount[stageIdx]!++;
    }
    if (sessionsLeft > 0) clock.setTimer(o.scrapeIntervalSeconds, tick);
  };
  clock.setTimer(t0 - clock.now() + o.scrapeIntervalSeconds, tick);

  const records: RequestRecord[] = [];
  const tokensPerSecond: number[] = [];
  let routingSeconds = 0;

  let inFlight = 0;
  const backlog: Array<() => void> = [];
  const admit = (send: () => void) => {
    if (inFlight < o.maxInFlight) {
      inFlight++;
      send();
    } else backlog.push(send);
  };
  const release = () => {
    inFlight--;
    const next = backlog.shift();
    if (next !== undefined) {
      inFlight++;
      // Not synchronously: this runs inside an engine's step completion, which must not be re-entered.
      clock.setTimer(0, next);
    }
  };

  // Flow control on the virtual clock: the production controller, its timers and deferrals as clock events.
  const fcSettings = o.flowControl ?? null;
  const fc =
    fcSettings === null
      ? null
      : new FlowController({
          settings: fcSettings,
          capacity: { candidates: () => store.candidates() },
          priorityOf: (name) => fcSettings.objectives?.[name] ?? null,
          logger: silentLogger,
          now: nowMs,
          timers: {
            after: (ms, fn) => {
              const h = clock.setTimer(ms / 1000, fn);
              return { cancel: () => h.cancel() };
            },
            defer: (fn) => {
              clock.setTimer(0, fn);
            },
          },
        });
  const rejected: RejectedRecord[] = [];
  const issue = (s: Session, turn: number, history: Uint32Array[]) => {
    const intended = clock.now();
    if (fc === null) {
      admit(() => send(s, turn, history, intended, null));
      return;
    }
    const tenant = s.tenant ?? o.model;
    const headers = new Map([
      ["x-gateway-inference-fairness-id", tenant],
      ["x-gateway-inference-objective", `priority-${s.priority ?? 0}`],
    ]);
    const spec = s.turns[turn]!;
    const bytes = 4 * (o.workload.systemPrompts[s.group]!.length + spec.question.length);
    fc.enqueue({ requestId: `s${s.index}-t${turn}`, model: o.model, headers, bytes }, (a) => {
      if (a.kind === "rejected") {
        rejected.push({
          tenant,
          arrival: intended - t0,
          code: a.error.code,
          status: a.error.httpStatus,
          queueWait: clock.now() - intended,
        });
        sessionsLeft--;
        return;
      }
      admit(() => send(s, turn, history, intended, a));
    });
  };

  const send = (
    s: Session,
    turn: number,
    history: Uint32Array[],
    intended: number,
    admission: Admission | null,
  ) => {
    const admittedAt = clock.now();
    const spec = s.turns[turn]!;
    const sys = o.workload.systemPrompts[s.group]!;
    const promptParts = turn === 0 ? [sys, spec.question] : [...history, spec.question];
    const output = outputTokens(o.seed, s.index, turn, spec.outputTokens);
    const tokenIds = concat(promptParts, spec.outputTokens - 1);
    const promptTokens = tokenIds.length - (spec.outputTokens - 1);
    tokenIds.set(output.subarray(0, spec.outputTokens - 1), promptTokens);
    const chain = hasher.hash(tokenIds);
    const id = `s${s.index}-t${turn}`;
    const req: BenchRequest = {
      ...(s.tenant !== undefined
        ? { headers: new Map([["x-gateway-inference-fairness-id", s.tenant]]) }
        : {}),
      ...(admission?.kind === "admitted" ? { priority: admission.priority } : {}),
      id,
      model: o.model,
      promptChain: chain.slice(0, Math.floor(promptTokens / o.engine.blockSize)),
      promptTokens,
      text: () => {
        const messages = [{ role: "system", content: render(sys) }];
        // history = [sys, q0, out0, q1, out1, …]: alternate user / assistant after the system prompt.
        const rest = turn === 0 ? [spec.question] : [...history.slice(1), spec.question];
        rest.forEach((p, i) => {
          messages.push({ role: i % 2 === 0 ? "user" : "assistant", content: render(p) });
        });
        return JSON.stringify(messages);
      },
    };
    const r0 = performance.now();
    const { pod, ticket } = policy.route(req);
    routingSeconds += (performance.now() - r0) / 1000;
    engines[pod]!.add({
      id,
      tokenIds,
      chain,
      promptTokens,
      maxTokens: spec.outputTokens,
      ...(fcSettings?.forwardPriority === true && admission?.kind === "admitted"
        ? { priority: -admission.priority }
        : {}),
      onToken: (i, time) => {
        if (i === 0) ticket?.firstToken();
        const b = Math.floor(time - t0);
        while (tokensPerSecond.length <= b) tokensPerSecond.push(0);
        tokensPerSecond[b]!++;
      },
      onFinish: (f: FinishedRequest) => {
        ticket?.done();
        if (admission?.kind === "admitted") admission.done();
        records.push({
          stage: s.stage,
          arrival: intended - t0,
          clientWait: f.arrival - admittedAt,
          ttft: f.firstToken - f.arrival,
          finished: f.finished - t0,
          promptTokens: f.promptTokens,
          cachedTokens: f.cachedTokens,
          outputTokens: f.outputTokens,
          preemptions: f.preemptions,
          pod,
          tenant: s.tenant ?? "",
          queueWait: admittedAt - intended,
        });
        if (turn + 1 < s.turns.length) {
          const next = [...(turn === 0 ? [sys, spec.question] : [...history, spec.question]), output];
          clock.setTimer(s.turns[turn + 1]!.thinkSeconds, () => issue(s, turn + 1, next));
        } else sessionsLeft--;
        release();
      },
    });
  };

  for (const s of o.workload.sessions) clock.setTimer(t0 + s.start - clock.now(), () => issue(s, 0, []));
  clock.run();

  let ws = 0;
  let wc = 0;
  for (let i = 0; i < waitSum.length; i++) {
    ws += waitSum[i]!;
    wc += waitCount[i]!;
  }
  return {
    policy: o.policy,
    records,
    rejected,
    tokensPerSecond,
    stageMeanWaiting: Array.from(waitSum, (s, i) => (waitCount[i]! > 0 ? s / waitCount[i]! : 0)),
    meanWaiting: wc > 0 ? ws / wc : 0,
    makespan: records.reduce((m, r) => Math.max(m, r.finished), 0),
    wallSeconds: (performance.now() - wallStart) / 1000,
    routingSeconds,
    eventBatches,
    indexEntriesAtEnd: index.stats().entries,
  };
}
