// When and how a pod's lost KV-event batches are replayed (llm-d's consumer pattern, vllm-kv-events.md §5):
// on a sequence gap, on the first batch of a pod whose seq is > 0 (kvpick started or subscribed late), and
// when a connect-mode subscription (re)connects. One DEALER per replay (replay-client.ts), admitted by the
// ReplayQueue (concurrency cap, one per endpoint, cooldown after a failure). While any replay of a pod is
// waiting or running, the ingest holds the pod's live batches; when the last one ends they are released in
// order, so nothing is applied twice or out of order.
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { PodState, ReplayRun } from "./pod-state.js";
import { type ReplayOutcome, requestReplay } from "./replay-client.js";
import { ReplayQueue } from "./replay-queue.js";

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
  metrics: Metrics;
  now: () => number;
  /** One replayed batch (raw payload) for the pod. */
  decode(state: PodState, seq: bigint, payload: Uint8Array): void;
  /** The pod's last replay ended (`state.replayFailed` tells whether one of them failed). */
  finished(state: PodState): void;
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
      onRunning: (n) => deps.metrics.kvReplaysRunning.set(n),
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
      this.#d.metrics.kvReplays.inc({ pod: state.podId, result: "cooldown" });
      return false;
    }
    const run: ReplayRun = {
      controller: new AbortController(),
      recovering: reason === "gap",
      hole: false,
      applied: 0,
    };
    let outcome: ReplayOutcome = { kind: "aborted", batches: 0 };
    const job = async () => {
      let first: bigint | null = null;
      outcome = await requestReplay(
        endpoint,
        start,
        {
          onBatch: (seq, payload) => {
            if (run.controller.signal.aborted) return;
            first ??= seq;
            run.applied++;
            this.#d.decode(state, seq, payload);
          },
          onMalformed: (why, detail) => {
            this.#d.metrics.kvEventsMalformed.inc({ pod: state.podId, reason: `replay-${why}` });
            this.#d.warn(state.podId, `replay-malformed:${why}`, "kv-event replay reply dropped", {
              reason: why,
              detail,
            });
          },
        },
        { timeoutMs: this.#s.timeoutMs, signal: run.controller.signal },
      );
      run.hole = first !== null && first > start;
      return outcome.kind === "complete" || outcome.kind === "aborted";
    };
    // Ends the run once the queue has freed the endpoint: releasing held batches may replay it again.
    const done = () => this.#end(state, run, endpoint, start, reason, outcome);
    if (!this.#queue.submit(endpoint, job, done)) return false;
    state.runs.add(run);
    if (run.recovering) state.accuracy.recovering(1);
    return true;
  }

  /** Aborted runs must already be out of their pod's `runs` (PodState.abortReplays). */
  async close(): Promise<void> {
    await this.#queue.drain();
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
    if (outcome.kind === "aborted" || !state.runs.delete(run)) return;
    if (run.recovering) state.accuracy.recovering(-1);
    const result =
      outcome.kind === "complete"
        ? run.hole && reason !== "connect"
          ? "incomplete"
          : "complete"
        : outcome.kind;
    this.#d.metrics.kvReplays.inc({ pod: state.podId, result });
    const fields = {
      endpoint,
      reason,
      from: start.toString(),
      batches: run.applied,
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
    if (outcome.kind !== "complete") state.replayFailed = true;
    if (state.runs.size === 0) this.#d.finished(state);
  }
}
