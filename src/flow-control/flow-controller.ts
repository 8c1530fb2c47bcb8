// Admission control in front of the scheduler (GIE v1.5 flow control, reduced to what one process needs).
// While the pool is not saturated and nobody waits, a request passes at once. Otherwise it waits in a
// bounded queue (flow-queues.ts: priority bands, round-robin between fairness flows) and is released one at a
// time while the pool has room: after each release the controller yields a macrotask, so the released
// request reaches the scheduler and its dispatch credit lands before the next saturation reading. Released
// requests still go through the normal scheduler, so each lands on the pod holding its prefix if it has room.
// Re-evaluated on every request completion and on a short timer (the scrape interval: each fresh reading).
// Each band may have its own saturation point (`saturationLimits`, default 1): a low band held at 0.8 leaves
// every pod headroom, so interactive work released later finds pods whose vLLM steps are not full of batch
// prefills (bench/README.md: the engine's step, not kvpick's queue, bounds its TTFT under overload). A band
// with pods of its own (scheduling's priority-reserve-filter) may sit above 1: the bands below hold the
// pool-wide mean at their point, and its requests should not wait for a mean over pods it does not use.
// Outcomes: sheddable (priority < 0) requests are never queued (429 when they cannot pass at once); a full
// queue or a wait past the deadline (config TTL, or the client's own) is 429; no ready endpoint at all is
// 503; an abandoned ext_proc stream leaves the queue at once.
import { EppError } from "../errors.js";
import type { Endpoint } from "../endpoints/endpoint.js";
import type { Logger } from "../observability/logger.js";
import { FairnessKeys } from "./fairness-keys.js";
import { FlowQueues, type QueueItem } from "./flow-queues.js";
import { clientDeadlineMs } from "./request-deadline.js";
import { poolSaturation, type SaturationParams } from "./saturation.js";

export const OBJECTIVE_HEADERS = ["x-gateway-inference-objective", "x-llm-d-inference-objective"] as const;
export const FAIRNESS_HEADERS = ["x-gateway-inference-fairness-id", "x-llm-d-inference-fairness-id"] as const;

/** GIE's QueueOutcome names, the `outcome` label of the queue-duration histogram. */
export type QueueOutcome =
  | "Dispatched"
  | "RejectedCapacity"
  | "RejectedOther"
  | "EvictedTTL"
  | "EvictedContextCancelled"
  | "EvictedOther";

/** Where flow control reports (observability/flow-control-metrics.ts implements it). */
export interface FlowControlRecorder {
  /** A request entered (+1, +bytes) or left (−1, −bytes) the queue of (fairness id, priority). */
  queued(fairnessId: string, priority: number, count: number, bytes: number): void;
  /** A request's final outcome and its time inside flow control. */
  finished(fairnessId: string, priority: number, model: string, outcome: QueueOutcome, seconds: number): void;
  /** One dispatch evaluation and the saturation it read. */
  cycle(seconds: number, saturation: number): void;
}

/** The ready endpoints and their load (endpoints/endpoint-store.ts implements it). */
export interface CapacitySource {
  candidates(): readonly Endpoint[];
}

export interface FlowControlSettings extends SaturationParams {
  /** Queue wait bound in ms when the client gives none (GIE defaultRequestTTL); 0 = the client's only. */
  readonly requestTtlMs: number;
  readonly maxRequestsPerBand: number;
  readonly maxBytesPerBand: number;
  readonly maxBytes: number;
  /** Distinct fairness ids tracked (the rest share one flow). */
  readonly maxFlows: number;
  /** Re-evaluation period while something waits. */
  readonly dispatchIntervalMs: number;
  /** Objective name → priority (InferenceObjective spec.priority); unknown or absent = defaultPriority. */
  readonly defaultPriority: number;
  /** Saturation point per band (key: priority), in (0, 4]; unlisted bands use 1. */
  readonly saturationLimits?: Readonly<Record<string, number>>;
}

/** The controller's notion of time passing; real timers by default, a virtual clock in the benchmark. */
export interface FlowTimers {
  /** Calls `fn` after `ms`; the handle cancels it. Must not keep the process alive. */
  after(ms: number, fn: () => void): { cancel(): void };
  /** Calls `fn` once the current task and its microtasks are done (a released request gets scheduled first). */
  defer(fn: () => void): void;
}

export const REAL_TIMERS: FlowTimers = {
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
  defer: (fn) => setImmediate(fn),
};

export interface FlowControllerOptions {
  settings: FlowControlSettings;
  capacity: CapacitySource;
  /** Priority of an objective name, null when unknown (then `defaultPriority`). */
  priorityOf(objective: string): number | null;
  recorder?: FlowControlRecorder | null;
  logger: Logger;
  /** Monotonic ms. */
  now?: () => number;
  timers?: FlowTimers;
}

/** One request as admission sees it (before tokenization and scheduling). */
export interface AdmissionRequest {
  readonly requestId: string;
  readonly model: string;
  readonly headers: ReadonlyMap<string, string>;
  /** Request body size: what the byte limits count. */
  readonly bytes: number;
  /** Aborted when the ext_proc stream is cancelled or abandoned. */
  readonly signal?: AbortSignal | undefined;
}

export type Admission =
  | {
      readonly kind: "admitted";
      readonly priority: number;
      readonly fairnessId: string;
      /** The request finished (response done or stream gone): capacity may have freed. Idempotent. */
      done(): void;
    }
  | { readonly kind: "rejected"; readonly error: EppError };

interface Waiter extends QueueItem {
  readonly model: string;
  readonly startedAt: number;
  resolve(a: Admission): void;
  timer: { cancel(): void } | null;
  unlisten: (() => void) | null;
}

export class FlowController {
  readonly #s: FlowControlSettings;
  readonly #o: FlowControllerOptions;
  readonly #queues: FlowQueues<Waiter>;
  readonly #keys: FairnessKeys;
  readonly #now: () => number;
  readonly #log: Logger;
  readonly #t: FlowTimers;
  #timer: { cancel(): void } | null = null;
  #releasePending = false;
  #stopped = false;

  constructor(options: FlowControllerOptions) {
    this.#o = options;
    this.#s = options.settings;
    this.#queues = new FlowQueues<Waiter>(options.settings);
    this.#keys = new FairnessKeys(options.settings.maxFlows);
    this.#now = options.now ?? (() => performance.now());
    this.#t = options.timers ?? REAL_TIMERS;
    this.#log = options.logger.child({ component: "flow-control" });
  }

  /** Requests waiting now. */
  get waiting(): number {
    return this.#queues.size;
  }

  admit(req: AdmissionRequest): Promise<Admission> {
    return new Promise((resolve) => this.enqueue(req, resolve));
  }

  /** `admit` with a callback, called exactly once (synchronously when the answer is immediate). */
  enqueue(req: AdmissionRequest, done: (a: Admission) => void): void {
    const startedAt = this.#now();
    const priority = this.#priorityOf(req.headers);
    const flow = this.#keys.keyFor(headerOf(req.headers, FAIRNESS_HEADERS) ?? req.model, (id) =>
      this.#queues.flowBusy(id),
    );
    const finish = (outcome: QueueOutcome) =>
      this.#o.recorder?.finished(flow, priority, req.model, outcome, (this.#now() - startedAt) / 1000);
    if (this.#stopped) {
      finish("RejectedOther");
      done(rejected(new EppError("EPP_NO_ENDPOINTS", "kvpick is shutting down")));
      return;
    }
    const pool = this.#reading();
    if (pool.endpoints === 0) {
      finish("RejectedCapacity");
      done(rejected(new EppError("EPP_NO_ENDPOINTS", "no ready endpoint: the pool has no capacity")));
      return;
    }
    if (pool.saturation < this.#limitOf(priority) && this.#queues.aheadOf(priority) === 0) {
      finish("Dispatched");
      done(this.#admitted(priority, flow));
      return;
    }
    if (priority < 0) {
      finish("RejectedCapacity");
      done(rejected(new EppError("EPP_SHED", "system saturated, sheddable request dropped")));
      return;
    }
    if (req.signal?.aborted === true) {
      finish("EvictedContextCancelled");
      done(rejected(new EppError("EPP_QUEUE_TIMEOUT", "request cancelled before it was queued")));
      return;
    }
    const clientMs = clientDeadlineMs(req.headers);
    const ttl = this.#s.requestTtlMs;
    const waitMs = clientMs === null ? ttl : ttl === 0 ? clientMs : Math.min(ttl, clientMs);
    const w: Waiter = {
      priority,
      flow,
      bytes: req.bytes,
      model: req.model,
      startedAt,
      gone: false,
      timer: null,
      unlisten: null,
      resolve: (a) => {
        w.timer?.cancel();
        w.unlisten?.();
        done(a);
      },
    };
    const refusal = this.#queues.refusal(w);
    if (refusal !== null) {
      finish("RejectedCapacity");
      done(
        rejected(
          new EppError(
            "EPP_QUEUE_FULL",
            refusal === "pool-full"
              ? "flow control queue full (flowControl.maxBytes)"
              : `flow control queue full for priority ${priority}`,
          ),
        ),
      );
      return;
    }
    this.#queues.push(w);
    this.#o.recorder?.queued(flow, priority, 1, w.bytes);
    if (waitMs > 0) w.timer = this.#t.after(waitMs, () => this.#evict(w, "EvictedTTL"));
    if (req.signal !== undefined) {
      const onAbort = () => this.#evict(w, "EvictedContextCancelled");
      req.signal.addEventListener("abort", onAbort, { once: true });
      w.unlisten = () => req.signal?.removeEventListener("abort", onAbort);
    }
    this.#ensureTimer();
    this.#scheduleRelease();
  }

  /** Completion or a fresh reading: re-evaluate now (callers: the request path, the timer, tests). */
  poke(): void {
    this.#scheduleRelease();
  }

  /** Shutdown: every waiting request gets 503 at once; later admissions too. */
  stop(): void {
    this.#stopped = true;
    this.#stopTimer();
    for (const w of this.#queues.drain()) {
      this.#o.recorder?.queued(w.flow, w.priority, -1, -w.bytes);
      this.#o.recorder?.finished(
        w.flow,
        w.priority,
        w.model,
        "EvictedOther",
        (this.#now() - w.startedAt) / 1000,
      );
      w.resolve(rejected(new EppError("EPP_NO_ENDPOINTS", "kvpick is shutting down")));
    }
  }

  #priorityOf(headers: ReadonlyMap<string, string>): number {
    const objective = headerOf(headers, OBJECTIVE_HEADERS);
    if (objective === null) return this.#s.defaultPriority;
    return this.#o.priorityOf(objective) ?? this.#s.defaultPriority;
  }

  #limitOf(priority: number): number {
    return this.#s.saturationLimits?.[String(priority)] ?? 1;
  }

  #reading() {
    const started = this.#now();
    const pool = poolSaturation(this.#o.capacity.candidates(), this.#s);
    this.#o.recorder?.cycle((this.#now() - started) / 1000, pool.saturation);
    return pool;
  }

  #admitted(priority: number, fairnessId: string): Admission {
    let open = true;
    return {
      kind: "admitted",
      priority,
      fairnessId,
      done: () => {
        if (!open) return;
        open = false;
        if (this.#queues.size > 0) this.#scheduleRelease();
      },
    };
  }

  #evict(w: Waiter, outcome: "EvictedTTL" | "EvictedContextCancelled"): void {
    if (w.gone) return;
    this.#queues.remove(w);
    this.#o.recorder?.queued(w.flow, w.priority, -1, -w.bytes);
    const seconds = (this.#now() - w.startedAt) / 1000;
    this.#o.recorder?.finished(w.flow, w.priority, w.model, outcome, seconds);
    if (outcome === "EvictedTTL") {
      const none = this.#o.capacity.candidates().length === 0;
      this.#log.info(
        { flow: w.flow, priority: w.priority, waitedMs: Math.round(seconds * 1000) },
        "request timed out in queue",
      );
      w.resolve(
        rejected(
          none
            ? new EppError("EPP_NO_ENDPOINTS", "request timed out in queue: no ready endpoint")
            : new EppError("EPP_QUEUE_TIMEOUT", "request timed out in queue"),
        ),
      );
    } else {
      w.resolve(rejected(new EppError("EPP_QUEUE_TIMEOUT", "request cancelled while queued")));
    }
    if (this.#queues.size === 0) this.#stopTimer();
  }

  /** Releases at most one waiter per macrotask, while the pool has room. */
  #scheduleRelease(): void {
    if (this.#releasePending || this.#queues.size === 0) return;
    this.#releasePending = true;
    this.#t.defer(() => {
      this.#releasePending = false;
      this.#releaseOne();
    });
  }

  #releaseOne(): void {
    if (this.#queues.size === 0) {
      this.#stopTimer();
      return;
    }
    const pool = this.#reading();
    const top = this.#queues.topPriority();
    if (top === null) return;
    // Strict priority: while the highest waiting band is held by its saturation point, so is every band below.
    if (pool.endpoints === 0 || pool.saturation >= this.#limitOf(top)) return; // the timer or a completion retries
    const w = this.#queues.pop();
    if (w === undefined) return;
    this.#o.recorder?.queued(w.flow, w.priority, -1, -w.bytes);
    this.#o.recorder?.finished(w.flow, w.priority, w.model, "Dispatched", (this.#now() - w.startedAt) / 1000);
    w.resolve(this.#admitted(w.priority, w.flow));
    this.#scheduleRelease();
  }

  /** While anything waits: re-evaluate every dispatchIntervalMs (fresh readings land between completions). */
  #ensureTimer(): void {
    if (this.#timer !== null) return;
    const tick = () => {
      this.#timer = null;
      if (this.#queues.size === 0 || this.#stopped) return;
      this.#scheduleRelease();
      this.#timer = this.#t.after(this.#s.dispatchIntervalMs, tick);
    };
    this.#timer = this.#t.after(this.#s.dispatchIntervalMs, tick);
  }

  #stopTimer(): void {
    this.#timer?.cancel();
    this.#timer = null;
  }
}

function headerOf(headers: ReadonlyMap<string, string>, names: readonly string[]): string | null {
  for (const n of names) {
    const v = headers.get(n)?.trim();
    if (v !== undefined && v !== "") return v;
  }
  return null;
}

function rejected(error: EppError): Admission {
  return { kind: "rejected", error };
}
