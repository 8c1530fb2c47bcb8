// A vLLM v1 engine core in miniature: continuous batching over one BlockManager, on an injectable SimClock.
// Each step: schedule (running requests first — decode 1 token or the next prefill chunk — preempting the
// newest running request when blocks run out; then waiting requests FCFS while the token budget, seat
// count and block pool allow; head-of-line blocking as vLLM), publish the step's KV events at schedule time
// (vLLM emits them at allocation, before the forward pass), wait the step's duration, then sample one token
// for every request whose prompt is fully computed. Logical step times never drift with timer lateness.
// `schedulingPolicy: "priority"` models vLLM's `--scheduling-policy priority` (v1 scheduler): the waiting
// queue is ordered by (priority, arrival), lower first, and a preemption picks the running request with the
// largest (priority, arrival). Running requests still go first in every step, as in vLLM: a high-priority
// arrival overtakes the waiting queue, not the prefill chunks already running.
// `longPrefillTokenThreshold` models vLLM's `--long-prefill-token-threshold`: a request's prefill chunk per
// step is capped (running and waiting requests alike, as vLLM's v1 scheduler does before the token budget).
import type { BlockManager, KvSequence } from "./block-manager.js";
import type { SimClock, TimerHandle } from "./clock.js";
import { type EngineConfig, stepSeconds } from "./engine-config.js";
import type { SimKvEvent } from "./kv-event.js";

export interface EngineRequestSpec {
  id: string;
  /** Every token the request will feed: the prompt, then generated tokens 0 .. maxTokens − 2. */
  tokenIds: Uint32Array;
  /** BlockHasher chain of tokenIds (with the request's extras, e.g. cache_salt). */
  chain: BigUint64Array;
  promptTokens: number;
  /** Output tokens to generate (max_tokens; the simulator never stops early). */
  maxTokens: number;
  /** vLLM's request `priority` (lower = sooner); read only under schedulingPolicy "priority". Default 0. */
  priority?: number;
  /** Called at the end of the step that produced generated token `index` (0-based). */
  onToken?: (index: number, time: number) => void;
  onFinish?: (info: FinishedRequest) => void;
}

export interface FinishedRequest {
  id: string;
  promptTokens: number;
  outputTokens: number;
  /** Prompt tokens served from the prefix cache at first scheduling (usage cached_tokens). */
  cachedTokens: number;
  arrival: number;
  firstScheduled: number;
  firstToken: number;
  finished: number;
  preemptions: number;
  aborted: boolean;
}

class Request implements KvSequence {
  readonly id: string;
  readonly tokenIds: Uint32Array;
  readonly chain: BigUint64Array;
  numTokens: number;
  blocks: number[] = [];
  numCachedBlocks = 0;
  numComputed = 0;
  generated = 0;
  cachedTokens = -1;
  firstScheduled = -1;
  firstToken = -1;
  preemptions = 0;
  constructor(
    readonly spec: EngineRequestSpec,
    readonly arrival: number,
  ) {
    this.id = spec.id;
    this.tokenIds = spec.tokenIds;
    this.chain = spec.chain;
    this.numTokens = spec.promptTokens;
  }
}

export interface EngineStats {
  running: number;
  waiting: number;
  kvCacheUsage: number;
  /** Prefix-cache counters in tokens (vllm:prefix_cache_queries / _hits). */
  prefixCacheQueries: number;
  prefixCacheHits: number;
  promptTokens: number;
  generationTokens: number;
  finished: number;
  preemptions: number;
  steps: number;
}

export interface EngineOptions {
  config: EngineConfig;
  blocks: BlockManager;
  clock: SimClock;
  /** One batch per step that produced events; `time` is the step's simulated schedule time. */
  onEvents?: (events: SimKvEvent[], time: number) => void;
}

export class Engine {
  readonly config: EngineConfig;
  readonly blocks: BlockManager;
  readonly #clock: SimClock;
  readonly #onEvents: EngineOptions["onEvents"];
  #waiting: Request[] = [];
  #running: Request[] = [];
  readonly #byId = new Map<string, Request>();
  #timer: TimerHandle | null = null;
  /** Logical end of the last step; the next step starts here unless the engine was idle. */
  #lastEnd = 0;
  readonly stats: EngineStats = {
    running: 0,
    waiting: 0,
    kvCacheUsage: 0,
    prefixCacheQueries: 0,
    prefixCacheHits: 0,
    promptTokens: 0,
    generationTokens: 0,
    finished: 0,
    preemptions: 0,
    steps: 0,
  };

  constructor(options: EngineOptions) {
    this.config = options.config;
    this.blocks = options.blocks;
    this.#clock = options.clock;
    this.#onEvents = options.onEvents;
    if (options.blocks.blockSize !== options.config.blockSize)
      throw new RangeError("engine and block manager disagree on blockSize");
  }

  get numRunning(): number {
    return this.#running.length;
  }
  get numWaiting(): number {
    return this.#waiting.length;
  }

  snapshot(): EngineStats {
    return {
      ...this.stats,
      running: this.#running.length,
      waiting: this.#waiting.length,
      kvCacheUsage: this.blocks.usage(),
    };
  }

  /** Queues a request (arrival = now). Throws RangeError when it can never fit (vLLM answers 400). */
  add(spec: EngineRequestSpec): void {
    if (spec.promptTokens < 1) throw new RangeError("empty prompt");
    if (spec.maxTokens < 1) throw new RangeError("max_tokens must be ≥ 1");
    const total = spec.promptTokens + spec.maxTokens;
    if (total > this.config.maxModelLen)
      throw new RangeError(
        `prompt (${spec.promptTokens}) + max_tokens (${spec.maxTokens}) exceeds max_model_len ${this.config.maxModelLen}`,
      );
    if (Math.ceil(total / this.config.blockSize) > this.blocks.numGpuBlocks - 1)
      throw new RangeError("request larger than the whole KV cache");
    if (this.#byId.has(spec.id)) throw new RangeError(`duplicate request id ${spec.id}`);
    const r = new Request(spec, this.#clock.now());
    this.#byId.set(r.id, r);
    if (this.#byPriority) this.#enqueueByPriority(r);
    else this.#waiting.push(r);
    this.#kick();
  }

  /** Client went away: drop the request wherever it is and free its blocks. */
  abort(id: string): boolean {
    const r = this.#byId.get(id);
    if (r === undefined) return false;
    this.#byId.delete(id);
    this.#waiting = this.#waiting.filter((x) => x !== r);
    this.#running = this.#running.filter((x) => x !== r);
    this.blocks.free(r);
    this.#finish(r, this.#clock.now(), true);
    return true;
  }

  /** vLLM reset_prefix_cache: AllBlocksCleared when nothing runs, else false. */
  resetPrefixCache(): boolean {
    const ok = this.blocks.reset();
    if (ok) this.#flushEvents(this.#clock.now());
    return ok;
  }

  /** Stops stepping and aborts everything (engine shutdown / restart). */
  stop(): void {
    this.#timer?.cancel();
    this.#timer = null;
    for (const id of [...this.#byId.keys()]) this.abort(id);
  }

  #kick(): void {
    if (this.#timer !== null) return;
    const now = this.#clock.now();
    const start = Math.max(now, this.#lastEnd);
    this.#timer = this.#clock.setTimer(start - now, () => this.#step(start));
  }

  #step(start: number): void {
    this.#timer = null;
    const scheduled = this.#schedule(start);
    this.#flushEvents(start);
    if (scheduled.length === 0) return; // idle (or everything waits for blocks that nobody frees)
    let tokens = 0;
    let context = 0;
    for (const [r, n] of scheduled) {
      tokens += n;
      context += r.numComputed + n;
    }
    const end = start + stepSeconds(this.config, tokens, context);
    this.stats.steps++;
    this.#timer = this.#clock.setTimer(end - this.#clock.now(), () => this.#complete(scheduled, end));
  }

  #complete(scheduled: Array<[Request, number]>, end: number): void {
    this.#timer = null;
    this.#lastEnd = end;
    for (const [r, n] of scheduled) {
      if (!this.#byId.has(r.id)) continue; // aborted during the step
      r.numComputed += n;
      if (r.numComputed < r.numTokens) continue; // more prefill chunks to go
      const index = r.generated++;
      this.stats.generationTokens++;
      if (index === 0) r.firstToken = end;
      r.spec.onToken?.(index, end);
      if (r.generated >= r.spec.maxTokens) {
        this.#byId.delete(r.id);
        this.#running = this.#running.filter((x) => x !== r);
        this.blocks.free(r);
        this.#finish(r, end, false);
      } else {
        r.numTokens++; // the sampled token is fed next step
      }
    }
    if (this.#running.length > 0 || this.#waiting.length > 0) {
      const now = this.#clock.now();
      this.#timer = this.#clock.setTimer(end - now, () => this.#step(end));
    }
  }

  #schedule(now: number): Array<[Request, number]> {
    const cfg = this.config;
    const out: Array<[Request, number]> = [];
    let budget = cfg.maxNumBatchedTokens;
    let preempted = false;
    // 1. Running requests, in order.
    for (let i = 0; i < this.#running.length && budget > 0; i++) {
      const r = this.#running[i]!;
      const n = Math.min(this.#chunk(r.numTokens - r.numComputed), budget);
      if (n <= 0) continue;
      let fits = this.blocks.allocate(r, r.numComputed + n);
      while (!fits) {
        const victim = this.#byPriority ? this.#takeLowestPriority() : this.#running.pop()!;
        this.#preempt(victim);
        preempted = true;
        if (victim === r) break;
        fits = this.blocks.allocate(r, r.numComputed + n);
      }
      if (!fits) break;
      out.push([r, n]);
      budget -= n;
    }
    // 2. Waiting requests, FCFS, only when nothing was preempted this step.
    while (!preempted && budget > 0 && this.#waiting.length > 0 && this.#running.length < cfg.maxNumSeqs) {
      const r = this.#waiting[0]!;
      const hits = this.blocks.computedBlocks(r);
      const computed = hits.length * cfg.blockSize;
      const n = Math.min(this.#chunk(r.numTokens - computed), budget);
      if (!this.blocks.allocate(r, computed + n, hits)) break;
      this.#waiting.shift();
      r.numComputed = computed;
      this.stats.prefixCacheQueries += r.numTokens;
      this.stats.prefixCacheHits += computed;
      if (r.cachedTokens < 0) {
        r.cachedTokens = computed;
        r.firstScheduled = now;
        this.stats.promptTokens += r.spec.promptTokens;
      }
      this.#running.push(r);
      out.push([r, n]);
      budget -= n;
    }
    return out;
  }

  /** vLLM RECOMPUTE preemption: free everything, back to the front of the queue, recompute later. */
  #preempt(r: Request): void {
    this.blocks.free(r);
    r.numComputed = 0;
    r.preemptions++;
    this.stats.preemptions++;
    if (this.#byPriority) this.#enqueueByPriority(r);
    else this.#waiting.unshift(r);
  }

  /** vLLM's long-prefill cap on one request's tokens in a step (a decode's 1 token is never capped). */
  #chunk(tokens: number): number {
    const cap = this.config.longPrefillTokenThreshold ?? 0;
    return cap > 0 && tokens > cap ? cap : tokens;
  }

  get #byPriority(): boolean {
    return this.config.schedulingPolicy === "priority";
  }

  /** Inserts after every waiting request with a smaller or equal (priority, arrival): vLLM's heap order. */
  #enqueueByPriority(r: Request): void {
    const p = r.spec.priority ?? 0;
    let i = this.#waiting.length;
    while (i > 0) {
      const w = this.#waiting[i - 1]!;
      const wp = w.spec.priority ?? 0;
      if (wp < p || (wp === p && w.arrival <= r.arrival)) break;
      i--;
    }
    this.#waiting.splice(i, 0, r);
  }

  /** Removes and returns the running request with the largest (priority, arrival) (vLLM's victim). */
  #takeLowestPriority(): Request {
    let vi = 0;
    for (let i = 1; i < this.#running.length; i++) {
      const a = this.#running[i]!;
      const v = this.#running[vi]!;
      const ap = a.spec.priority ?? 0;
      const vp = v.spec.priority ?? 0;
      if (ap > vp || (ap === vp && a.arrival >= v.arrival)) vi = i;
    }
    return this.#running.splice(vi, 1)[0]!;
  }

  #flushEvents(time: number): void {
    const events = this.blocks.takeEvents();
    if (events.length > 0) this.#onEvents?.(events, time);
  }

  #finish(r: Request, time: number, aborted: boolean): void {
    if (!aborted) this.stats.finished++;
    r.spec.onFinish?.({
      id: r.id,
      promptTokens: r.spec.promptTokens,
      outputTokens: r.generated,
      cachedTokens: Math.max(0, r.cachedTokens),
      arrival: r.arrival,
      firstScheduled: r.firstScheduled,
      firstToken: r.firstToken,
      finished: time,
      preemptions: r.preemptions,
      aborted,
    });
  }
}
