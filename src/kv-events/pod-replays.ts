// When and how a pod's lost KV-event batches are replayed (llm-d's consumer pattern, vllm-kv-events.md §5):
// on a sequence gap, on the first batch of a pod whose seq is > 0 (kvpick started or subscribed late), and
// when a connect-mode subscription (re)connects. One DEALER per replay (replay-client.ts), admitted by the
// ReplayQueue (concurrency cap, one per endpoint, cooldown after a failure). While any replay of a pod is
// waiting or running, the ingest holds the pod's live batches; when the last one ends they are released in
// order, so nothing is applied twice or out of order.
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "../observability/logger.js";
import type { KvEventsRecorder } from "./kv-events-recorder.js";
import type { PodState, ReplayRun } from "./pod-state.js";
import { type ReplayOutcome, requestReplay } from "./replay-client.js";
import { ReplayQueue } from "./replay-queue.js";

// Resuming a replay that ended without its end marker: right away, then after 100 ms, 200 ms, … ≤ 2 s; at most
// 20 resumes in all (a 10,000-batch ring cut at every 1,000 needs 9), and 3 in a row that bring nothing.
const MAX_RESUMES = 20;
const MAX_STALLED_RESUMES = 3;
const RESUME_BACKOFF_MS = 100;
const RESUME_BACKOFF_MAX_MS = 2000;

export interface ReplaySettings {
  /** Where the publisher of `rank` of a pod serves replays (tcp://ip:port), or null when it cannot. */
  endpoint(podId: string, rank: number | null): string | null;
  timeoutMs: number;
  cooldownMs: number;
  maxConcurrent: number;
  maxHeldBatches: number;
}

/** Why a replay starts: a gap after known state, a late first batch, a (re)connected subscription. */
export type ReplayReason = "gap" | "joined" | "connect";

export interface PodReplaysDeps {
  logger: Logger;
  recorder: KvEventsRecorder;
  now: () => number;
  /**
   * One replayed batch (raw payload) for the pod; a promise while a huge one decodes in slices (the next
   * reply waits for it). `cancelled` turns true when the replay is aborted: the batch is then dropped.
   */
  decode(state: PodState, seq: bigint, payload: Uint8Array, cancelled: () => boolean): void | Promise<void>;
  /** The pod's last replay ended (`state.release()` tells whether one of them failed). */
  finished(state: PodState): void;
  /**
   * A replay ended without its end marker and is being resumed ("begun"), a resumed one then ended with its
   * marker ("healed"), or the resumes gave up ("abandoned": a loss that heals like any other).
   */
  truncation(state: PodState, what: "begun" | "healed" | "abandoned", fields: Record<string, unknown>): void;
  warn(pod: string, key: string, msg: string, fields: Record<string, unknown>): void;
}

export class PodReplays {
  readonly maxHeldBatches: number;
  readonly #s: ReplaySettings;
  readonly #d: PodReplaysDeps;
  readonly #queue: ReplayQueue;

  constructor(settings: ReplaySettings, deps: PodReplaysDeps) {
    this.#s = settings;
    this.#d = deps;
    this.maxHeldBatches = settings.maxHeldBatches;
    this.#queue = new ReplayQueue({
      maxConcurrent: settings.maxConcurrent,
      cooldownMs: settings.cooldownMs,
      now: deps.now,
      onRunning: (n) => deps.recorder.replaysRunning(n),
    });
  }

  /** The ReplayQueue (tests read its peak concurrency). */
  get queue(): ReplayQueue {
    return this.#queue;
  }

  /**
   * Starts replaying the pod's publisher of `rank` from `start`. False when it cannot (no endpoint, one
   * already running for that endpoint, cooling down after a failure): the caller applies what it has.
   */
  start(state: PodState, rank: number | null, start: bigint, reason: ReplayReason): boolean {
    const endpoint = this.#s.endpoint(state.podId, rank);
    if (endpoint === null || this.#queue.busy(endpoint)) return false;
    if (this.#queue.coolingDown(endpoint)) {
      this.#d.recorder.replay(state.podId, "cooldown");
      return false;
    }
    const run: ReplayRun = {
      controller: new AbortController(),
      recovering: reason === "gap",
      start,
      hole: false,
      applied: 0,
      truncated: false,
      resumes: 0,
    };
    let outcome: ReplayOutcome = { kind: "aborted", batches: 0 };
    const aborted = () => run.controller.signal.aborted;
    const job = async () => {
      let from = start;
      let last: bigint | null = null;
      let stalled = 0;
      for (let attempt = 0; ; attempt++) {
        let first: bigint | null = null;
        // vLLM's ROUTER drops what exceeds its send high-water mark while its I/O thread drains, so a long
        // reply can skip a run of batches and go on: applying past such a hole would lose it for good. The
        // attempt stops at the hole instead (its own signal) and is resumed from it like a lost tail.
        const attemptCtl = new AbortController();
        const cut = () => attemptCtl.abort();
        if (run.controller.signal.aborted) cut();
        else run.controller.signal.addEventListener("abort", cut, { once: true });
        let hole = false;
        outcome = await requestReplay(
          endpoint,
          from,
          {
            onBatch: (seq, payload) => {
              if (run.controller.signal.aborted || hole) return;
              if (first !== null && seq > (last as bigint) + 1n) {
                hole = true;
                attemptCtl.abort();
                return;
              }
              first ??= seq;
              last = seq;
              run.applied++;
              return this.#d.decode(state, seq, payload, aborted);
            },
            onMalformed: (why, detail) => {
              this.#d.recorder.malformed(state.podId, `replay-${why}`);
              this.#d.warn(state.podId, `replay-malformed:${why}`, "kv-event replay reply dropped", {
                reason: why,
                detail,
              });
            },
          },
          { timeoutMs: this.#s.timeoutMs, signal: attemptCtl.signal },
        );
        run.controller.signal.removeEventListener("abort", cut);
        if (first !== null && first > from) run.hole = true;
        if (run.controller.signal.aborted) {
          outcome = { kind: "aborted", batches: outcome.batches };
          return true;
        }
        if (hole) outcome = { kind: "failed", batches: outcome.batches, reason: "replies lost mid-reply" };
        if (outcome.kind === "complete") {
          if (run.truncated) this.#d.truncation(state, "healed", this.#cut(endpoint, reason, from, run));
          return true;
        }
        // Nothing ever came back: no replay socket there (or a dead one): the cooldown applies.
        if (last === null) return false;
        // It ended without its end marker (or at a hole): vLLM's ROUTER drops what exceeds its send high-water mark (1,000
        // messages) without a word, end marker included, or the pod stalled. What was applied may hold stores
        // whose removals never came: degraded now, and resumed right after the last applied batch.
        stalled = outcome.batches === 0 ? stalled + 1 : 0;
        const fields = this.#cut(endpoint, reason, from, run);
        if (!run.truncated) {
          run.truncated = true;
          this.#d.truncation(state, "begun", fields);
        }
        if (stalled > MAX_STALLED_RESUMES || attempt >= MAX_RESUMES) {
          this.#d.truncation(state, "abandoned", fields);
          return false;
        }
        this.#d.recorder.replay(state.podId, "truncated");
        // A hole means the pod answers faster than the pipe drains, not that it stalled: resume at once.
        const pause =
          attempt === 0 || hole ? 0 : Math.min(RESUME_BACKOFF_MAX_MS, RESUME_BACKOFF_MS * 2 ** (attempt - 1));
        if (pause > 0) await sleep(pause, undefined, { signal: run.controller.signal }).catch(() => {});
        if (run.controller.signal.aborted) {
          outcome = { kind: "aborted", batches: 0 };
          return true;
        }
        from = (last as bigint) + 1n;
        run.resumes++;
      }
    };
    // Ends the run once the queue has freed the endpoint: releasing held batches may replay it again.
    const done = () => this.#end(state, run, endpoint, start, reason, outcome);
    if (!this.#queue.submit(endpoint, job, done)) return false;
    state.runStarted(run);
    return true;
  }

  /** Aborted runs must already be out of their pod's runs (PodState.abortReplays). */
  async close(): Promise<void> {
    await this.#queue.drain();
  }

  #fields(endpoint: string, reason: ReplayReason, from: bigint, run: ReplayRun): Record<string, unknown> {
    return { endpoint, reason, from: from.toString(), batches: run.applied, resumes: run.resumes };
  }

  /** Log fields of a truncation (`reason` is the accuracy's there: the replay's is `trigger`). */
  #cut(endpoint: string, trigger: ReplayReason, from: bigint, run: ReplayRun): Record<string, unknown> {
    return { endpoint, trigger, from: from.toString(), batches: run.applied, resumes: run.resumes };
  }

  #end(
    state: PodState,
    run: ReplayRun,
    endpoint: string,
    start: bigint,
    reason: ReplayReason,
    outcome: ReplayOutcome,
  ): void {
    // Aborted (restart, pod forgotten, shutdown): the pod's state has moved on without this run.
    if (outcome.kind === "aborted" || !state.runEnded(run, outcome.kind !== "complete")) return;
    const result =
      outcome.kind === "complete"
        ? run.hole && reason !== "connect"
          ? "incomplete"
          : "complete"
        : outcome.kind;
    this.#d.recorder.replay(state.podId, result);
    const fields = {
      ...this.#fields(endpoint, reason, start, run),
      ...(outcome.kind === "failed" ? { error: outcome.reason } : {}),
    };
    if (outcome.kind === "complete")
      this.#d.logger.debug({ pod: state.podId, ...fields, result }, "kv-event replay done");
    else
      this.#d.warn(
        state.podId,
        `replay-${outcome.kind}`,
        `kv-event replay ${outcome.kind === "timeout" ? "timed out" : "failed"}: check the pod's vLLM replay_endpoint and kvEvents.replayPort`,
        { ...fields, cooldownMs: this.#s.cooldownMs },
      );
    if (!state.replaying) this.#d.finished(state);
  }
}
