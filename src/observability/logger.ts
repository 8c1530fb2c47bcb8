// The pino root logger: JSON lines with `level` as a string, `msg`, and an ISO timestamp. Components take a
// child (`logger.child({ component: "kv-events" })`). Prompt text is never logged by default.
import { pino, type Logger } from "pino";

export type { Logger };

export interface LoggerOptions {
  level?: string;
  /** Destination stream (tests capture lines here); stdout when omitted. */
  destination?: pino.DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? "info",
      base: null,
      messageKey: "msg",
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // Request bodies and prompts must never reach the logs, even by accident.
      redact: {
        paths: ["prompt", "messages", "body", "*.prompt", "*.messages", "*.body"],
        censor: "[redacted]",
      },
    },
    options.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** Logs at most one line per `key` per `intervalMs`, counting what it suppressed. */
export class RateLimitedLog {
  readonly #intervalMs: number;
  readonly #last = new Map<string, { at: number; suppressed: number }>();

  constructor(intervalMs = 10_000) {
    this.#intervalMs = intervalMs;
  }

  /** Returns the number of suppressed lines to report, or -1 when this line must be dropped. */
  admit(key: string, now = Date.now()): number {
    const entry = this.#last.get(key);
    if (entry === undefined || now - entry.at >= this.#intervalMs) {
      const suppressed = entry?.suppressed ?? 0;
      if (this.#last.size > 10_000) this.#last.clear(); // keys come from the network: keep them bounded
      this.#last.set(key, { at: now, suppressed: 0 });
      return suppressed;
    }
    entry.suppressed++;
    return -1;
  }
}
