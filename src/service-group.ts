// The one lifecycle contract of kvpick's long-lived components and the helper that runs them: the composition
// root lists its services once, they start in that order and stop in reverse, so a component is never stopped
// before the ones that depend on it (ext_proc drains before the index's feeds close, Redis flushes after the
// subscriber's last change, traces flush last).
import type { Logger } from "./observability/logger.js";

/** A long-lived component: something that listens, polls, watches or holds a connection. */
export interface Service {
  /** Short name for logs ("ext-proc", "kv-events", …). */
  readonly name: string;
  /** Starts it; resolves once it is serving (or, for a background loop, once it is running). */
  start(): Promise<unknown> | undefined;
  /**
   * Stops it, giving in-flight work up to `graceMs` to finish; resolves once its sockets, timers and workers
   * are closed. Called at most once, and only after `start()` resolved.
   */
  stop(graceMs: number): Promise<unknown> | undefined;
}

/** Runs services in order; stops those that started, in reverse, each failure logged and not fatal to the rest. */
export class ServiceGroup {
  private readonly started: Service[] = [];

  constructor(
    private readonly services: readonly Service[],
    private readonly logger: Logger,
  ) {}

  /** Starts each service after the previous one; if one fails, the ones already started are stopped. */
  async start(): Promise<void> {
    for (const service of this.services) {
      try {
        await service.start();
      } catch (err) {
        await this.stop(0);
        throw err;
      }
      this.started.push(service);
    }
  }

  /** Stops the started services in reverse start order; a second call waits for nothing. */
  async stop(graceMs: number): Promise<void> {
    while (this.started.length > 0) {
      const service = this.started.pop()!;
      try {
        await service.stop(graceMs);
      } catch (err) {
        this.logger.error(
          { service: service.name, err: err instanceof Error ? err.message : String(err) },
          "service failed to stop cleanly",
        );
      }
    }
  }
}
