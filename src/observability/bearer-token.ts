// The bearer token `/metrics` may require (`server.metricsBearerTokenFile`), read from a file such as a
// mounted Kubernetes Secret. Re-read at most every `refreshMs` so a rotated Secret takes effect without a
// restart; a file that becomes unreadable keeps the last good token. Tokens are compared in constant time
// (as SHA-256 digests, so their lengths leak nothing either).
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { ConfigError } from "../errors.js";
import type { MetricsAccess, MetricsGate } from "./admin-server.js";
import type { Logger } from "./logger.js";

const digest = (s: string | Buffer) => createHash("sha256").update(s).digest();

export class BearerToken implements MetricsGate {
  readonly path: string;
  readonly #refreshMs: number;
  readonly #log: Logger;
  #digest: Buffer;
  #readAt = 0;
  #reading: Promise<void> | null = null;

  /** Reads the file once, at startup: a ConfigError naming the key when it is missing or empty. */
  constructor(path: string, logger: Logger, refreshMs = 30_000) {
    this.path = path;
    this.#log = logger;
    this.#refreshMs = refreshMs;
    let token: string;
    try {
      token = readFileSync(path, "utf8").trim();
    } catch (err) {
      throw new ConfigError([
        `server.metricsBearerTokenFile: cannot read ${path}: ${(err as Error).message}`,
      ]);
    }
    if (token === "") throw new ConfigError([`server.metricsBearerTokenFile: ${path} is empty`]);
    this.#digest = digest(token);
    this.#readAt = Date.now();
  }

  /** Whether an `Authorization` header value carries the token. */
  async verify(header: string | undefined): Promise<boolean> {
    if (Date.now() - this.#readAt >= this.#refreshMs) {
      this.#reading ??= this.#refresh().finally(() => {
        this.#reading = null;
      });
      await this.#reading;
    }
    const m = header === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    if (m === null) return false;
    return timingSafeEqual(digest(m[1]!), this.#digest);
  }

  /** The admin server's gate: 401 unless the header carries the token. */
  async check(header: string | undefined): Promise<MetricsAccess> {
    return (await this.verify(header))
      ? { allowed: true }
      : { allowed: false, status: 401, reason: "unauthorized" };
  }

  async #refresh(): Promise<void> {
    this.#readAt = Date.now();
    try {
      const token = await this.#read();
      if (token !== null) this.#digest = digest(token);
      else
        this.#log.warn({ path: this.path }, "metrics bearer token file is empty: keeping the previous token");
    } catch (err) {
      this.#log.warn(
        { path: this.path, err: (err as Error).message },
        "metrics bearer token file unreadable: keeping the previous token",
      );
    }
  }

  async #read(): Promise<string | null> {
    const text = (await readFile(this.path, "utf8")).trim();
    return text === "" ? null : text;
  }
}
