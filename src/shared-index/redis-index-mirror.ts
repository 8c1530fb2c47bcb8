// The write path of the shared index: mirrors what the local ingest applied into Redis. Changes are only
// noted on the event path (pod, medium, block); a flush on the next tick reads each noted entry's current
// reference count from the local index and writes that absolute value (so repeated or duplicated writes —
// several replicas mirroring one pod, a re-sync — are idempotent, and a store then remove in one tick costs
// one write). One pipeline in flight at a time; while it runs, changes coalesce. Memory is bounded: past
// `maxPendingWrites` noted entries, or while Redis is down, changes are dropped and counted; when the
// connection becomes ready again the whole local index is re-written pod by pod (re-sync).
import type { BlockIndex } from "../kv-index/block-index.js";
import type { IndexMirror } from "../kv-events/index-mirror.js";
import type { Logger } from "../observability/logger.js";
import { RateLimitedLog } from "../observability/logger.js";
import type { SharedIndexMetrics } from "./shared-index-metrics.js";
import { blockHex, hexWords, type RedisKeys } from "./redis-keys.js";
import type { LinkPipeline, RedisLink, ScriptArg } from "./redis-link.js";

export interface RedisIndexMirrorOptions {
  link: RedisLink;
  index: BlockIndex;
  keys: RedisKeys;
  ttlSeconds: number;
  maxPendingWrites: number;
  logger: Logger;
  metrics: SharedIndexMetrics;
}

/** Entries per write script call: bounds one script's run time inside Redis (~1 ms). */
const WRITE_CHUNK = 1000;
/** Entries drained per pod-clear script call, for the same reason. */
const CLEAR_CHUNK = 1000;
/** Pods whose clear waits for Redis (cleared while it was down); names come from the network. */
const MAX_PENDING_CLEARS = 10_000;

export class RedisIndexMirror implements IndexMirror {
  readonly #o: RedisIndexMirrorOptions;
  readonly #log: Logger;
  readonly #rate = new RateLimitedLog(10_000);
  /** pod → medium → block hex digits. */
  #pending = new Map<string, Map<string, Set<string>>>();
  #pendingCount = 0;
  readonly #clears = new Set<string>();
  #scheduled = false;
  #inFlight: Promise<void> | null = null;
  #resyncing: Promise<void> | null = null;
  #closed = false;

  /** Labelled once: `touched` runs per event on the ingest path, where prom-client's label hashing adds up. */
  readonly #writes: Record<"written" | "dropped" | "failed", { inc(n: number): void }>;

  constructor(options: RedisIndexMirrorOptions) {
    this.#o = options;
    this.#log = options.logger;
    const w = options.metrics.redisWrites;
    this.#writes = {
      written: w.labels({ outcome: "written" }),
      dropped: w.labels({ outcome: "dropped" }),
      failed: w.labels({ outcome: "failed" }),
    };
  }

  touched(podId: string, medium: string, words: Uint32Array, count: number): void {
    if (count === 0 || this.#closed) return;
    if (!this.#o.link.up || medium.includes("|") || medium === "") {
      // Down: the re-sync on reconnect rewrites this pod anyway. A "|" in a medium name would be ambiguous
      // in the block's field "<medium>|<pod>" (vLLM's media are GPU, CPU, …).
      this.#writes.dropped.inc(count);
      return;
    }
    let byMedium = this.#pending.get(podId);
    if (byMedium === undefined) {
      byMedium = new Map();
      this.#pending.set(podId, byMedium);
    }
    let set = byMedium.get(medium);
    if (set === undefined) {
      set = new Set();
      byMedium.set(medium, set);
    }
    let dropped = 0;
    for (let i = 0; i < count; i++) {
      const hex = blockHex(words[2 * i]!, words[2 * i + 1]!);
      if (set.has(hex)) continue;
      if (this.#pendingCount >= this.#o.maxPendingWrites) {
        dropped++;
        continue;
      }
      set.add(hex);
      this.#pendingCount++;
    }
    if (dropped > 0) {
      this.#writes.dropped.inc(dropped);
      this.#warn("backlog", "redis: write backlog full: changes dropped (Redis too slow)", { dropped });
    }
    this.#schedule();
  }

  podCleared(podId: string): void {
    if (this.#closed) return;
    const byMedium = this.#pending.get(podId);
    if (byMedium !== undefined) {
      // The local index no longer holds anything of the pod: the clear covers these entries.
      for (const set of byMedium.values()) this.#pendingCount -= set.size;
      this.#pending.delete(podId);
    }
    if (this.#clears.size < MAX_PENDING_CLEARS) this.#clears.add(podId);
    else this.#o.metrics.redisPodClears.inc({ outcome: "failed" });
    this.#schedule();
  }

  /** Entries noted and not yet written. */
  pendingWrites(): number {
    return this.#pendingCount;
  }

  /** Resolves once nothing is noted, in flight or being re-synchronised (tests, orderly shutdown). */
  async settled(): Promise<void> {
    for (;;) {
      if (this.#inFlight !== null) await this.#inFlight;
      else if (this.#resyncing !== null) await this.#resyncing;
      else if (this.#scheduled || (this.#o.link.up && (this.#pendingCount > 0 || this.#clears.size > 0)))
        await new Promise((r) => setImmediate(r));
      else return;
    }
  }

  /** The connection became ready: pending clears first, then every pod of the local index is rewritten. */
  onReady(): void {
    if (this.#closed) return;
    const run = (async () => {
      if (this.#inFlight !== null) await this.#inFlight;
      await this.#flush();
      let entries = 0;
      for (const pod of this.#o.index.podIds()) {
        if (this.#closed || !this.#o.link.up) return;
        entries += await this.#resyncPod(pod);
      }
      if (entries > 0) this.#log.info({ entries }, "redis: local index re-synchronised to the shared index");
    })();
    this.#resyncing = run;
    void run.finally(() => {
      if (this.#resyncing === run) this.#resyncing = null;
    });
  }

  close(): void {
    this.#closed = true;
  }

  #schedule(): void {
    if (this.#scheduled || this.#inFlight !== null) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (this.#inFlight === null) void this.#flush();
    });
  }

  /** Sends everything noted in one pipeline; afterwards flushes again if more was noted meanwhile. */
  #flush(): Promise<void> {
    if (this.#inFlight !== null) return this.#inFlight;
    if (this.#pendingCount === 0 && this.#clears.size === 0) return Promise.resolve();
    const m = this.#o.metrics;
    if (!this.#o.link.up) {
      this.#writes.dropped.inc(this.#pendingCount);
      this.#pending = new Map();
      this.#pendingCount = 0;
      return Promise.resolve(); // clears wait for the connection (onReady)
    }
    const clears = [...this.#clears];
    this.#clears.clear();
    const pending = this.#pending;
    const total = this.#pendingCount;
    this.#pending = new Map();
    this.#pendingCount = 0;

    const p = this.#o.link.pipeline();
    const clearKeys: [string, string][] = clears.map((pod) => [
      this.#o.keys.pod(pod),
      this.#o.keys.podClearing(pod),
    ]);
    // Clears go first: writes in the same pipeline are later local state and land in the pod's new set.
    clears.forEach((pod, i) => {
      p.kvpickClearPod(2, ...clearKeys[i]!, ...this.#clearArgs(pod, true));
    });
    for (const [pod, byMedium] of pending)
      for (const [medium, set] of byMedium) this.#queueWrites(p, pod, medium, set);

    const run = (async () => {
      let failed = 0;
      try {
        const replies = (await p.exec()) ?? [];
        for (let i = 0; i < clears.length; i++) {
          const [err, drained] = replies[i] ?? [new Error("no reply"), 0];
          if (err !== null) m.redisPodClears.inc({ outcome: "failed" });
          else await this.#finishClear(clears[i]!, clearKeys[i]!, Number(drained));
        }
        for (let i = clears.length; i < replies.length; i++) if (replies[i]![0] !== null) failed++;
      } catch (err) {
        failed = -1;
        this.#warn("write", "redis: mirror write failed", { err: (err as Error).message });
      }
      if (failed === 0) this.#writes.written.inc(total);
      else this.#writes.failed.inc(total); // a group failed: its entries' fate is unknown
    })();
    this.#inFlight = run;
    return run.finally(() => {
      this.#inFlight = null;
      if (this.#pendingCount > 0 || this.#clears.size > 0) this.#schedule();
    });
  }

  /** One write script call per chunk of a (pod, medium) group, counts read from the local index now. */
  #queueWrites(p: LinkPipeline, pod: string, medium: string, hexes: Iterable<string>): void {
    const index = this.#o.index;
    let args: ScriptArg[] = [];
    for (const hex of hexes) {
      const [lo, hi] = hexWords(hex);
      args.push(hex, index.refCount(pod, medium, lo, hi));
      if (args.length >= 2 * WRITE_CHUNK) {
        p.kvpickWrite(1, this.#o.keys.pod(pod), ...this.#writeHead(pod, medium), ...args);
        args = [];
      }
    }
    if (args.length > 0) p.kvpickWrite(1, this.#o.keys.pod(pod), ...this.#writeHead(pod, medium), ...args);
  }

  #writeHead(pod: string, medium: string): ScriptArg[] {
    return [this.#o.keys.blockPrefix, pod, medium, this.#o.ttlSeconds];
  }

  #clearArgs(pod: string, first: boolean): ScriptArg[] {
    return [this.#o.keys.blockPrefix, pod, CLEAR_CHUNK, first ? "1" : "0", this.#o.ttlSeconds];
  }

  /** Drains the rest of a large pod's former set, one bounded script call at a time. */
  async #finishClear(pod: string, keys: [string, string], drained: number): Promise<void> {
    try {
      while (drained >= CLEAR_CHUNK) drained = await this.#o.link.clearPod(keys, this.#clearArgs(pod, false));
      this.#o.metrics.redisPodClears.inc({ outcome: "done" });
    } catch (err) {
      // The former set expires with its TTL; entries left behind expire with their blocks.
      this.#o.metrics.redisPodClears.inc({ outcome: "failed" });
      this.#warn("clear", "redis: pod clear failed", { pod, err: (err as Error).message });
    }
  }

  /** Rewrites one pod's whole local state; returns its entry count. */
  async #resyncPod(pod: string): Promise<number> {
    const { words, media, refs } = this.#o.index.podEntries(pod);
    const byMedium = new Map<string, ScriptArg[]>();
    for (let i = 0; i < refs.length; i++) {
      const medium = media[i]!;
      if (medium === "" || medium.includes("|")) continue;
      let args = byMedium.get(medium);
      if (args === undefined) {
        args = [];
        byMedium.set(medium, args);
      }
      args.push(blockHex(words[2 * i]!, words[2 * i + 1]!), refs[i]!);
    }
    const p = this.#o.link.pipeline();
    for (const [medium, args] of byMedium)
      for (let i = 0; i < args.length; i += 2 * WRITE_CHUNK)
        p.kvpickWrite(
          1,
          this.#o.keys.pod(pod),
          ...this.#writeHead(pod, medium),
          ...args.slice(i, i + 2 * WRITE_CHUNK),
        );
    try {
      const replies = (await p.exec()) ?? [];
      const ok = replies.every(([err]) => err === null);
      (ok ? this.#writes.written : this.#writes.failed).inc(refs.length);
    } catch (err) {
      this.#writes.failed.inc(refs.length);
      this.#warn("resync", "redis: re-sync failed", { pod, err: (err as Error).message });
    }
    return refs.length;
  }

  #warn(key: string, msg: string, fields: Record<string, unknown>): void {
    const suppressed = this.#rate.admit(key);
    if (suppressed >= 0) this.#log.warn({ ...fields, suppressed }, msg);
  }
}
