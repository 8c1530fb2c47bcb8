// The ext_proc serving thread (server.grpcThread): runs grpc-js and ExtProcStream exactly as the main thread
// would, with a Router that forwards each complete request to the main thread (grpc-thread.ts) and answers
// with its RouteOutcome, a recorder and readiness that ask the main thread, and a logger whose lines the main
// thread writes to its own destination (same stdout, same level and fields, in order with its own lines).
import { parentPort, workerData } from "node:worker_threads";
import { EppError } from "../errors.js";
import { createExtProcServer, type ExtProcRecorder } from "../ext-proc/server.js";
import type { ResponseObserver, RouteOutcome, Router, RouteRequest } from "../ext-proc/router.js";
import { createLogger } from "../observability/logger.js";
import {
  HOOK_BODY,
  HOOK_HEADERS,
  Outbox,
  ownedCopy,
  type ThreadServerOptions,
  type ToMain,
  type ToThread,
  type WireOutcome,
} from "./grpc-thread-protocol.js";

const port = parentPort!;
const options = workerData as ThreadServerOptions;
const outbox = new Outbox<ToMain>(port);

const logger = createLogger({
  level: options.logLevel,
  destination: { write: (line: string) => outbox.send({ t: "log", line }) },
}).child(options.logBindings);

let nextId = 1;
const routing = new Map<number, (o: WireOutcome) => void>();
const readinessAsks = new Map<number, (ready: boolean) => void>();

const router: Router = {
  route(request: RouteRequest): Promise<RouteOutcome> {
    const id = nextId++;
    const body = ownedCopy(request.body);
    outbox.send(
      {
        t: "route",
        id,
        requestId: request.requestId,
        method: request.method,
        path: request.path,
        headers: request.headers as Map<string, string>,
        body,
        subsetHint: request.subsetHint as string[] | null,
      },
      body,
    );
    request.onCancel?.(() => {
      if (!routing.has(id)) return;
      outbox.send({ t: "cancel", id });
      outbox.flush(); // a queued request leaves its flow-control queue at once
    });
    return new Promise<WireOutcome>((resolve) => routing.set(id, resolve)).then((o) => outcomeOf(id, o));
  },
};

function outcomeOf(id: number, o: WireOutcome): RouteOutcome {
  switch (o.kind) {
    case "routed": {
      const routed: RouteOutcome = { kind: "routed", endpoint: o.endpoint };
      if (o.fallbacks !== undefined) routed.fallbacks = o.fallbacks;
      if (o.endpointScores !== undefined) routed.endpointScores = o.endpointScores;
      if (o.hooks !== 0) routed.observer = observerFor(id, o.hooks);
      return routed;
    }
    case "rejected":
      return { kind: "rejected", error: new EppError(o.code, o.message) };
    case "cancelled":
      return o;
    case "thrown": {
      // Rethrown here so the stream answers and logs it exactly as it does for a local router.
      const err = o.code === null ? new Error(o.message) : new EppError(o.code, o.message);
      if (o.stack !== undefined) err.stack = o.stack;
      throw err;
    }
  }
}

/** Forwards the hooks the main thread's observer has; onDone always (it frees the main thread's entry). */
function observerFor(id: number, hooks: number): ResponseObserver {
  const observer: ResponseObserver = { onDone: (outcome) => outbox.send({ t: "done", id, outcome }) };
  if ((hooks & HOOK_HEADERS) !== 0)
    observer.onResponseHeaders = (headers) =>
      outbox.send({ t: "rh", id, headers: headers as Map<string, string> });
  if ((hooks & HOOK_BODY) !== 0)
    observer.onResponseBody = (chunk, eos) => {
      const copy = ownedCopy(chunk); // the chunk is a view into grpc-js' frame: copied, then transferred
      outbox.send({ t: "rb", id, chunk: copy, eos }, copy);
    };
  return observer;
}

// The stream records an answer before writing it, a response's end and a stream's close as they happen:
// posted at once, these reach the main registry as the client sees the answer (as on the main thread), so a
// scrape right after a response counts it.
const recorder: ExtProcRecorder = {
  streamOpened: () => outbox.send({ t: "o" }),
  streamClosed: () => {
    outbox.send({ t: "c" });
    outbox.flush();
  },
  answered: (s) => {
    outbox.send({ t: "a", s });
    outbox.flush();
  },
  responseDone: () => {
    outbox.send({ t: "d" });
    outbox.flush();
  },
};

let nextAsk = 1;
const isReady = () =>
  new Promise<boolean>((resolve) => {
    const id = nextAsk++;
    readinessAsks.set(id, resolve);
    outbox.send({ t: "ready?", id });
    outbox.flush(); // a health check must not wait for the next turn
  });

const server = createExtProcServer({
  router,
  logger,
  grpcPort: options.grpcPort,
  healthPort: options.healthPort,
  ...(options.host === undefined ? {} : { host: options.host }),
  secureServing: options.secureServing,
  certPath: options.certPath ?? null,
  maxBodyBytes: options.maxBodyBytes,
  isReady,
  metrics: recorder,
  ...(options.defaultRequestBodyMode === undefined
    ? {}
    : { defaultRequestBodyMode: options.defaultRequestBodyMode }),
  ...(options.defaultResponseBodyMode === undefined
    ? {}
    : { defaultResponseBodyMode: options.defaultResponseBodyMode }),
});

port.on("message", (batch: ToThread[]) => {
  for (const m of batch) {
    switch (m.t) {
      case "outcome": {
        const resolve = routing.get(m.id);
        routing.delete(m.id);
        resolve?.(m.o);
        break;
      }
      case "ready": {
        const resolve = readinessAsks.get(m.id);
        readinessAsks.delete(m.id);
        resolve?.(m.value);
        break;
      }
      case "stop":
        void server.stop(m.graceMs).then(() => {
          outbox.send({ t: "stopped" });
          outbox.flush();
          port.close(); // nothing else holds the thread: it exits
        });
        break;
    }
  }
});

server.start().then(
  (ports) => {
    outbox.send({ t: "started", ...ports });
    outbox.flush();
  },
  (err: Error) => {
    outbox.send({ t: "startFailed", message: err.message, stack: err.stack });
    outbox.flush();
    port.close();
  },
);
