// List-then-watch for one collection, kept alive forever (client-go's Reflector, reduced to what discovery
// needs). The contract with the consumer:
// - `onList(items)` after every successful list: the complete current set (a resync, replace everything);
// - `onEvent(type, object)` for each ADDED / MODIFIED / DELETED after it, in order;
// - nothing is called while the API server is away: the consumer keeps its last state (routing continues on
//   the last known pool).
// Failure handling:
// - the watch ends normally (server `timeoutSeconds`) → re-watch at once from the last resourceVersion;
// - the watch connection fails → backoff, re-watch from the last resourceVersion (nothing missed: the API
//   server replays from it);
// - 410 Gone (HTTP or an ERROR event: that version was compacted away) → re-list at once;
// - any other HTTP error or a failed list → backoff, re-list.
// Backoff doubles from `initialBackoffMs` to `maxBackoffMs` with ±20 % jitter, reset by a successful list or
// a watch that delivered events.
import type { Logger } from "../observability/logger.js";
import { type KubeApi, KubeApiError, type KubeObject, type WatchEvent } from "./kube-api.js";

export type ObjectEventType = "ADDED" | "MODIFIED" | "DELETED";

export interface ReflectorOptions {
  api: KubeApi;
  /** Collection path, e.g. `/api/v1/namespaces/ns/pods`; a function so a caller may switch API versions. */
  path: () => string;
  /** labelSelector / fieldSelector. */
  query: Record<string, string>;
  /** Names the collection in logs. */
  what: string;
  logger: Logger;
  onList(items: KubeObject[]): void;
  onEvent(type: ObjectEventType, object: KubeObject): void;
  /** Every failed list or watch (after logging); lets the owner react, e.g. to 404 (CRD missing). */
  onError?(err: KubeApiError): void;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Server-side watch duration; the server ends the watch after it and we re-watch. */
  watchTimeoutSeconds?: number;
}

export class Reflector {
  readonly #o: ReflectorOptions;
  readonly #log: Logger;
  #stopped = false;
  #synced = false;
  #resourceVersion = "";
  #failures = 0;
  #watch: { abort(): void } | null = null;
  #wake: (() => void) | null = null;
  #loop: Promise<void> | null = null;

  constructor(options: ReflectorOptions) {
    this.#o = options;
    this.#log = options.logger;
  }

  /** True once a list succeeded (stays true through later disconnects). */
  get synced(): boolean {
    return this.#synced;
  }

  get resourceVersion(): string {
    return this.#resourceVersion;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#watch?.abort();
    this.#wake?.();
    await this.#loop;
  }

  async #run(): Promise<void> {
    let needList = true;
    while (!this.#stopped) {
      try {
        if (needList) {
          const list = await this.#o.api.list(this.#o.path(), this.#o.query);
          if (this.#stopped) return;
          this.#resourceVersion = list.resourceVersion;
          this.#o.onList(list.items);
          if (!this.#synced || this.#failures > 0)
            this.#log.info({ what: this.#o.what, items: list.items.length }, "kube: listed");
          this.#synced = true;
          this.#failures = 0;
          needList = false;
        }
        const outcome = await this.#watchOnce();
        if (outcome === "gone") {
          this.#log.info({ what: this.#o.what }, "kube: resourceVersion expired (410), re-listing");
          needList = true;
        }
      } catch (err) {
        if (this.#stopped) return;
        const e = err instanceof KubeApiError ? err : new KubeApiError(String(err), null, { cause: err });
        // A transport failure keeps our resourceVersion (re-watch resumes); an HTTP error re-lists.
        if (e.statusCode !== null || this.#resourceVersion === "") needList = true;
        if (e.statusCode === 410) {
          needList = true;
          continue;
        }
        this.#failures++;
        const delay = this.#backoff();
        this.#log.warn(
          {
            what: this.#o.what,
            err: e.message,
            statusCode: e.statusCode,
            retryInMs: delay,
            failures: this.#failures,
          },
          "kube: API server call failed; keeping the last known state",
        );
        this.#o.onError?.(e);
        await this.#sleep(delay);
      }
    }
  }

  /** One watch until it ends: "ended" (normal end, re-watch), "gone" (410: re-list); throws on failure. */
  async #watchOnce(): Promise<"ended" | "gone"> {
    let gone = false;
    let delivered = 0;
    let failure: KubeApiError | null = null;
    const timeout = this.#o.watchTimeoutSeconds ?? 300;
    const handle = this.#o.api.watch(
      this.#o.path(),
      {
        ...this.#o.query,
        resourceVersion: this.#resourceVersion,
        allowWatchBookmarks: "true",
        // Spread the re-watches of many EPP replicas (client-go does the same).
        timeoutSeconds: String(Math.round(timeout * (1 + Math.random()))),
      },
      (event: WatchEvent) => {
        if (gone || failure !== null || this.#stopped) return;
        const rv = event.object?.metadata?.resourceVersion;
        if (event.type === "ERROR") {
          const code = typeof event.object?.code === "number" ? (event.object.code as number) : null;
          if (code === 410) gone = true;
          else
            failure = new KubeApiError(
              `watch error: ${String(event.object?.message ?? "unknown")}`,
              code ?? 500,
            );
          handle.abort();
          return;
        }
        if (typeof rv === "string" && rv !== "") this.#resourceVersion = rv;
        if (event.type === "BOOKMARK") return;
        delivered++;
        this.#o.onEvent(event.type, event.object);
      },
    );
    this.#watch = handle;
    const started = Date.now();
    try {
      await handle.done;
    } finally {
      this.#watch = null;
    }
    if (gone) return "gone";
    if (failure !== null) throw failure;
    if (delivered > 0) this.#failures = 0;
    // A server that accepts watches and closes them at once must not make us spin.
    if (delivered === 0 && Date.now() - started < 1000 && !this.#stopped)
      throw new KubeApiError("watch ended immediately", null);
    return "ended";
  }

  #backoff(): number {
    const initial = this.#o.initialBackoffMs ?? 250;
    const max = this.#o.maxBackoffMs ?? 30_000;
    const base = Math.min(max, initial * 2 ** Math.min(this.#failures - 1, 20));
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    }).finally(() => {
      this.#wake = null;
    });
  }
}
