// The error catalogue: every error kvpick raises on purpose has a stable code defined here, and the HTTP
// status it maps to when it ends a request. Users and tests match on `code`, never on message text.

export const ERROR_CODES = {
  /** Malformed request body: not JSON, missing `model`, unusable `messages` / `prompt`. */
  EPP_BAD_REQUEST: 400,
  /** Request body larger than `--max-body-bytes`. */
  EPP_BODY_TOO_LARGE: 413,
  /** Every candidate endpoint was filtered out. */
  EPP_OVERLOADED: 429,
  /** Flow control: the pool is saturated and the request is sheddable (priority < 0): never queued. */
  EPP_SHED: 429,
  /** Flow control: the queue for the request's priority (or the global byte bound) is full. */
  EPP_QUEUE_FULL: 429,
  /** Flow control: the request waited past its deadline (flowControl.requestTtlMs or the client's), or left. */
  EPP_QUEUE_TIMEOUT: 429,
  /** No ready endpoint in the pool. */
  EPP_NO_ENDPOINTS: 503,
  /** A bug or an unexpected failure inside kvpick. */
  EPP_INTERNAL: 500,
  /** Tokenizer files missing or unreadable, chat template failed to render. */
  EPP_TOKENIZER: 500,
  /** Startup only: the configuration is invalid. */
  EPP_CONFIG_INVALID: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class EppError extends Error {
  readonly code: ErrorCode;
  readonly httpStatus: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "EppError";
    this.code = code;
    this.httpStatus = ERROR_CODES[code];
  }
}

export const badRequest = (message: string, cause?: unknown) =>
  new EppError("EPP_BAD_REQUEST", message, cause === undefined ? undefined : { cause });

/** Thrown at startup; `problems` holds one line per bad field, e.g. `tokenizer.blockSize: expected …`. */
export class ConfigError extends EppError {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super("EPP_CONFIG_INVALID", `invalid configuration:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}
