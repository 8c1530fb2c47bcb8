// One request as the director reads it and the answer it gives, declared here so routing/ never imports
// the protocol layer: ext-proc/router.ts states the full contract it calls (`Router`), and the director fits
// it structurally (app.ts hands one to the other, so the compiler checks they agree).
import type { EppError } from "../errors.js";

/** The fields of ext-proc's RouteRequest the director reads. */
export interface RouteRequest {
  readonly requestId: string;
  readonly method: string;
  readonly path: string;
  /** Lower-case names. */
  readonly headers: ReadonlyMap<string, string>;
  /** The exact request body bytes (empty for body-less requests). */
  readonly body: Uint8Array;
  /** The proxy's subset hint; null = the whole pool, [] = nothing eligible. */
  readonly subsetHint: readonly string[] | null;
  /** Fires when Envoy gave up before the answer is written: then nothing may be recorded. */
  readonly signal?: AbortSignal | undefined;
  /** Whether `signal` fired, read without creating it (ext-proc makes the signal on first read: ~30 µs). */
  readonly cancelled?: (() => boolean) | undefined;
}

/** The response path's hooks (ext-proc calls them in wire order, never concurrently). */
export interface ResponseObserver {
  onResponseHeaders?(headers: ReadonlyMap<string, string>): void;
  onResponseBody?(chunk: Uint8Array, endOfStream: boolean): void;
  onDone?(outcome: "complete" | "aborted"): void;
}

export type RouteOutcome =
  | {
      kind: "routed";
      endpoint: string;
      fallbacks?: readonly string[];
      observer?: ResponseObserver;
      endpointScores?: Record<string, unknown>;
    }
  | { kind: "rejected"; error: EppError }
  | { kind: "cancelled" };
