// The one Redis connection of the shared index: ioredis with fail-fast settings (no offline queue, so a
// command while disconnected fails at once and routing falls back to local state), endless reconnects with
// capped backoff, the scripts registered for EVALSHA, and up/down transitions reported once each (a warn
// line and `epp_redis_up`). Connection errors are logged rate-limited, never thrown.
import { Redis } from "ioredis";
import type { Logger } from "../observability/logger.js";
import { RateLimitedLog } from "../observability/logger.js";
import { CLEAR_POD_LUA, LOOKUP_LUA, WRITE_LUA } from "./redis-scripts.js";

export type ScriptArg = string | number;

/** The scripts as ioredis commands (defineCommand); on a pipeline too. */
interface ScriptCommands {
  kvpickLookup(numKeys: 0, ...args: ScriptArg[]): Promise<unknown>;
  kvpickWrite(numKeys: 1, ...args: ScriptArg[]): Promise<number>;
  kvpickClearPod(numKeys: 2, ...args: ScriptArg[]): Promise<number>;
}
export type LinkPipeline = ScriptCommands & { exec(): Promise<[Error | null, unknown][] | null> };

export interface RedisLinkOptions {
  url: string;
  logger: Logger;
  /** Called with true when the connection becomes ready, false when it is lost. */
  onState?: (up: boolean) => void;
  connectTimeoutMs?: number;
}

/** Reconnect backoff: 50 ms doubling to 1 s, forever (the index must come back by itself). */
const retryDelay = (times: number) => Math.min(50 * 2 ** Math.min(times, 5), 1000);

export class RedisLink {
  readonly client: Redis;
  readonly #log: Logger;
  readonly #rate = new RateLimitedLog(10_000);
  readonly #onState: (up: boolean) => void;
  #up = false;
  #everUp = false;
  #closed = false;

  constructor(options: RedisLinkOptions) {
    this.#log = options.logger;
    this.#onState = options.onState ?? (() => {});
    this.client = new Redis(options.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      // Commands in flight when the connection drops fail instead of being retried later: a late answer
      // to a routing lookup is useless, and writes are re-synchronised from the local index on reconnect.
      maxRetriesPerRequest: 0,
      connectTimeout: options.connectTimeoutMs ?? 2000,
      retryStrategy: retryDelay,
      connectionName: "kvpick",
    });
    this.client.defineCommand("kvpickLookup", { lua: LOOKUP_LUA });
    this.client.defineCommand("kvpickWrite", { lua: WRITE_LUA });
    this.client.defineCommand("kvpickClearPod", { lua: CLEAR_POD_LUA });
    this.client.on("ready", () => this.#set(true));
    this.client.on("close", () => this.#set(false));
    this.client.on("error", (err: Error) => {
      const suppressed = this.#rate.admit("error");
      if (suppressed >= 0) this.#log.warn({ err: err.message, suppressed }, "redis: connection error");
    });
  }

  /** True while the connection is ready for commands. */
  get up(): boolean {
    return this.#up;
  }

  /** Starts connecting in the background; never rejects (state changes are reported). */
  start(): void {
    this.client.connect().catch(() => {
      // Reported through the error/close events; ioredis keeps retrying per retryStrategy.
    });
  }

  lookup(args: readonly ScriptArg[]): Promise<unknown> {
    return (this.client as unknown as ScriptCommands).kvpickLookup(0, ...args);
  }

  clearPod(keys: [string, string], args: readonly ScriptArg[]): Promise<number> {
    return (this.client as unknown as ScriptCommands).kvpickClearPod(2, ...keys, ...args);
  }

  pipeline(): LinkPipeline {
    return this.client.pipeline() as unknown as LinkPipeline;
  }

  async close(): Promise<void> {
    this.#closed = true;
    // QUIT lets replies in flight arrive; a dead or stalled Redis gets 500 ms, then the socket is dropped.
    const quit = this.client.quit().catch(() => {});
    await Promise.race([quit, new Promise((r) => setTimeout(r, 500).unref())]);
    this.client.disconnect();
  }

  #set(up: boolean): void {
    if (up === this.#up) return;
    this.#up = up;
    if (up) {
      this.#log[this.#everUp ? "warn" : "info"](
        {},
        this.#everUp ? "redis: reachable again: shared index back in use" : "redis: connected",
      );
      this.#everUp = true;
    } else if (!this.#closed) {
      this.#log.warn({}, "redis: unreachable: routing on the local index until it returns");
    }
    this.#onState(up);
  }
}
