// server.grpcThread: the ext_proc gRPC server (and gRPC health) on a worker thread of its own, so grpc-js,
// HTTP/2 and the ext_proc stream (about half of the request path's main-thread CPU) run on the second core.
// The main thread keeps everything else: it hosts the real Router (the Director), the recorder (the main
// registry), readiness and the log destination, and answers the thread's messages (grpc-thread-protocol.ts).
//
// If the thread dies, the main thread logs an error, reports not ready (/readyz; gRPC health is gone with the
// thread), cancels what the thread was routing, closes its streams' gauges, and starts a new thread on the same
// ports after a backoff. A process exit would make the kubelet restart the pod too, but would throw away the
// warm index and the KV-event subscriptions for a fault confined to the transport.
import { Worker } from "node:worker_threads";
import { pino } from "pino";
import { EppError } from "../errors.js";
import type { ExtProcServer, ExtProcServerOptions } from "../ext-proc/server.js";
import type { ResponseObserver, RouteRequest } from "../ext-proc/router.js";
import { RoutingCancel } from "../ext-proc/routing-cancel.js";
import {
  HOOK_BODY,
  HOOK_HEADERS,
  Outbox,
  type ThreadServerOptions,
  type ToMain,
  type ToThread,
  type WireOutcome,
} from "./grpc-thread-protocol.js";

export interface ThreadedExtProcServer extends ExtProcServer {
  /** False while the serving thread is down or restarting (and before start / after stop). */
  serving(): boolean;
  /** The current serving thread (diagnostics and tests), null while down. */
  readonly thread: Worker | null;
}

export interface ThreadTuning {
  /** First restart delay after the thread dies; doubles per consecutive death, up to 30 s. */
  restartBackoffMs?: number;
}

const MAX_BACKOFF_MS = 30_000;
/** A thread that served this long before dying resets the backoff. */
const HEALTHY_RUN_MS = 60_000;

export function createThreadedExtProcServer(
  options: ExtProcServerOptions,
  tuning: ThreadTuning = {},
): ThreadedExtProcServer {
  const logger = options.logger.child({ component: "ext-proc" });
  // The thread's lines go to the main logger's own destination (stdout, or a test's capture), in order with
  // the main thread's lines; stdout if that logger has none.
  const destination = (
    options.logger as unknown as Record<symbol, { write(line: string): void } | undefined>
  )[pino.symbols.streamSym] ?? { write: (line: string) => void process.stdout.write(line) };
  const metrics = options.metrics;
  const firstBackoff = tuning.restartBackoffMs ?? 1_000;

  let worker: Worker | null = null;
  let outbox: Outbox<ToThread> | null = null;
  let up = false;
  let stopping = false;
  let ports = { grpcPort: options.grpcPort, healthPort: options.healthPort };
  let backoff = firstBackoff;
  let startedAt = 0;
  let restartTimer: NodeJS.Timeout | null = null;
  // Per thread: what it has open, so a death can be accounted for.
  let open = 0;
  let routedNotDone = 0;
  const routing = new Map<number, RoutingCancel>();
  const observers = new Map<number, { observer: ResponseObserver; requestId: string }>();
  let stopped: (() => void) | null = null;

  const workerOptions = (): ThreadServerOptions => ({
    grpcPort: ports.grpcPort,
    healthPort: ports.healthPort,
    host: options.host,
    secureServing: options.secureServing,
    certPath: options.certPath,
    maxBodyBytes: options.maxBodyBytes,
    defaultRequestBodyMode: options.defaultRequestBodyMode,
    defaultResponseBodyMode: options.defaultResponseBodyMode,
    logLevel: options.logger.level,
    logBindings: options.logger.bindings(),
  });

  const observe = (id: number, hook: (o: ResponseObserver) => void) => {
    const entry = observers.get(id);
    if (entry === undefined) return;
    try {
      hook(entry.observer);
    } catch (err) {
      logger.child({ "x-request-id": entry.requestId }).warn({ err }, "response observer threw; ignored");
    }
  };

  const route = (out: Outbox<ToThread>, m: Extract<ToMain, { t: "route" }>) => {
    const cancel = new RoutingCancel();
    routing.set(m.id, cancel);
    const request: RouteRequest = {
      requestId: m.requestId,
      method: m.method,
      path: m.path,
      headers: m.headers,
      body: Buffer.from(m.body),
      subsetHint: m.subsetHint,
      get signal() {
        return cancel.signal;
      },
      cancelled: () => cancel.aborted,
    };
    const answer = (o: WireOutcome) => {
      if (routing.get(m.id) !== cancel) return; // the thread died meanwhile: nobody to answer
      routing.delete(m.id);
      out.send({ t: "outcome", id: m.id, o });
    };
    const thrown = (err: unknown) =>
      answer({
        kind: "thrown",
        code: err instanceof EppError ? err.code : null,
        message: err instanceof Error ? err.message : String(err),
        stack: err instanceof Error ? err.stack : undefined,
      });
    let pending: ReturnType<NonNullable<typeof options.router>["route"]>;
    try {
      pending = options.router.route(request);
    } catch (err) {
      thrown(err);
      return;
    }
    pending.then((o) => {
      switch (o.kind) {
        case "routed": {
          const ob = o.observer;
          const hooks =
            ob === undefined
              ? 0
              : (ob.onResponseHeaders === undefined ? 0 : HOOK_HEADERS) |
                (ob.onResponseBody === undefined ? 0 : HOOK_BODY) |
                (ob.onDone === undefined ? 0 : 4);
          if (routing.get(m.id) !== cancel) {
            // The thread died while this was routed: its stream is gone, as a stream closed while routing.
            if (ob?.onDone !== undefined) {
              observers.set(m.id, { observer: ob, requestId: m.requestId });
              observe(m.id, (x) => x.onDone?.("aborted"));
              observers.delete(m.id);
            }
            return;
          }
          if (ob !== undefined && hooks !== 0) observers.set(m.id, { observer: ob, requestId: m.requestId });
          answer({
            kind: "routed",
            endpoint: o.endpoint,
            fallbacks: o.fallbacks,
            endpointScores: o.endpointScores,
            hooks,
          });
          return;
        }
        case "rejected":
          answer({ kind: "rejected", code: o.error.code, message: o.error.message });
          return;
        case "cancelled":
          answer(o);
          return;
      }
    }, thrown);
  };

  const onMessages = (out: Outbox<ToThread>, batch: ToMain[]) => {
    for (const m of batch) {
      switch (m.t) {
        case "route":
          route(out, m);
          break;
        case "cancel":
          routing.get(m.id)?.abort();
          break;
        case "o":
          open++;
          metrics?.streamOpened();
          break;
        case "c":
          open--;
          metrics?.streamClosed();
          break;
        case "a":
          if (m.s === 200) routedNotDone++;
          metrics?.answered(m.s);
          break;
        case "d":
          routedNotDone--;
          metrics?.responseDone();
          break;
        case "rh":
          observe(m.id, (o) => o.onResponseHeaders?.(m.headers));
          break;
        case "rb":
          observe(m.id, (o) => o.onResponseBody?.(Buffer.from(m.chunk), m.eos));
          break;
        case "done":
          observe(m.id, (o) => o.onDone?.(m.outcome));
          observers.delete(m.id);
          break;
        case "ready?":
          void Promise.resolve(up && !stopping && options.isReady()).then((value) => {
            out.send({ t: "ready", id: m.id, value });
            out.flush();
          });
          break;
        case "log":
          destination.write(m.line);
          break;
        case "stopped":
          stopped?.();
          break;
        case "started":
        case "startFailed":
          break; // handled by spawn()
      }
    }
  };

  /** Accounts for everything the dead thread had open: its streams are gone, and so are their answers. */
  const forgetThread = () => {
    for (const cancel of routing.values()) cancel.abort();
    routing.clear();
    for (const id of [...observers.keys()]) {
      observe(id, (o) => o.onDone?.("aborted"));
      observers.delete(id);
    }
    for (; routedNotDone > 0; routedNotDone--) metrics?.responseDone();
    for (; open > 0; open--) metrics?.streamClosed();
  };

  const spawn = () =>
    new Promise<{ grpcPort: number; healthPort: number }>((resolve, reject) => {
      const w = new Worker(new URL("./grpc-thread-entry.js", import.meta.url), {
        workerData: workerOptions(),
        // Its own name in diagnostics (perf, --cpu-prof files).
        name: "kvpick-ext-proc",
      });
      const out = new Outbox<ToThread>(w);
      let starting = true;
      w.on("message", (batch: ToMain[]) => {
        if (starting) {
          for (const m of batch) {
            if (m.t === "started") {
              starting = false;
              up = true;
              startedAt = Date.now();
              ports = { grpcPort: m.grpcPort, healthPort: m.healthPort };
              resolve(ports);
            } else if (m.t === "startFailed") {
              starting = false;
              const err = new Error(m.message);
              if (m.stack !== undefined) err.stack = m.stack;
              reject(err);
            }
          }
        }
        onMessages(out, batch);
      });
      w.on("error", (err) => {
        if (starting) {
          starting = false;
          reject(err);
          return;
        }
        logger.error({ err }, "ext_proc serving thread failed");
      });
      w.on("exit", (code) => {
        if (worker === w) {
          worker = null;
          outbox = null;
        }
        const wasUp = up;
        up = false;
        forgetThread();
        if (starting) {
          starting = false;
          reject(new Error(`ext_proc serving thread exited during start (code ${code})`));
          return;
        }
        stopped?.();
        if (stopping || !wasUp) return;
        if (Date.now() - startedAt > HEALTHY_RUN_MS) backoff = firstBackoff;
        logger.error(
          { exitCode: code, restartInMs: backoff },
          "ext_proc serving thread died: not ready until it is restarted",
        );
        scheduleRestart();
      });
      worker = w;
      outbox = out;
    });

  const scheduleRestart = () => {
    const delay = backoff;
    backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
    restartTimer = setTimeout(() => {
      restartTimer = null;
      if (stopping) return;
      spawn().then(
        (bound) => logger.info(bound, "ext_proc serving thread restarted"),
        (err: unknown) => {
          logger.error({ err }, "ext_proc serving thread failed to restart");
          void worker?.terminate();
          if (!stopping) scheduleRestart();
        },
      );
    }, delay);
  };

  return {
    name: "ext-proc",
    async start() {
      stopping = false;
      try {
        return await spawn();
      } catch (err) {
        await worker?.terminate();
        throw err;
      }
    },
    async stop(graceMs = 5_000) {
      stopping = true;
      if (restartTimer !== null) clearTimeout(restartTimer);
      restartTimer = null;
      const w = worker;
      if (w === null || outbox === null) return;
      const done = new Promise<void>((resolve) => {
        stopped = resolve;
      });
      outbox.send({ t: "stop", graceMs });
      outbox.flush();
      // A thread that does not answer (hung) is terminated once the grace period is surely over.
      let timer: NodeJS.Timeout | undefined;
      const hung = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs + 5_000);
      });
      await Promise.race([done, hung]);
      clearTimeout(timer);
      stopped = null;
      await w.terminate(); // exits by itself once its server is closed; do not wait on stray handles
      logger.info("ext_proc serving thread stopped");
    },
    inFlight: () => open,
    serving: () => up && !stopping,
    get thread() {
      return worker;
    },
  };
}
