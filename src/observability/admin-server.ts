// The admin HTTP port (GIE: 9090): Prometheus text on /metrics from kvpick's own registry, plus plain
// /healthz (process alive) and /readyz (ready to route) for Kubernetes probes. A `metricsGate` guards
// /metrics as GIE's --metrics-endpoint-auth does (Kubernetes TokenReview + SubjectAccessReview, or a static
// token file): 401 without acceptable credentials, 403 when they may not read /metrics; the probes stay
// open for the kubelet.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import type { Service } from "../service-group.js";
import type { Logger } from "./logger.js";

export interface AdminServerOptions {
  registry: Registry;
  /** 0 = any free port. */
  port: number;
  host?: string;
  logger: Logger;
  isLive?(): boolean;
  isReady(): boolean;
  /** Asked before every /metrics answer when given; null/absent = open. */
  metricsGate?: MetricsGate | null;
}

/** The verdict on one scrape's `Authorization` header. */
export type MetricsAccess =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly status: 401 | 403 | 503; readonly reason: string };

/** Decides whether a scrape may read /metrics. Never throws; never logs the token. */
export interface MetricsGate {
  check(authorization: string | undefined): Promise<MetricsAccess>;
}

export interface AdminServer extends Service {
  start(): Promise<number>;
  /** Closes the listener and every open connection (keep-alive scrapers included); no grace needed. */
  stop(graceMs?: number): Promise<void>;
}

export function createAdminServer(options: AdminServerOptions): AdminServer {
  const logger = options.logger.child({ component: "admin" });
  const text = (res: ServerResponse, status: number, body: string, type = "text/plain; charset=utf-8") => {
    res.writeHead(status, { "content-type": type, "cache-control": "no-store" });
    res.end(body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?", 1)[0];
    if (req.method !== "GET" && req.method !== "HEAD") return text(res, 405, "method not allowed\n");
    switch (path) {
      case "/metrics":
        if (options.metricsGate != null) {
          const access = await options.metricsGate.check(req.headers.authorization);
          if (!access.allowed) {
            if (access.status === 401) res.setHeader("www-authenticate", 'Bearer realm="kvpick metrics"');
            return text(res, access.status, `${access.reason}\n`);
          }
        }
        return text(res, 200, await options.registry.metrics(), options.registry.contentType);
      case "/healthz": {
        const live = options.isLive?.() ?? true;
        return text(res, live ? 200 : 503, live ? "ok\n" : "not live\n");
      }
      case "/readyz": {
        const ready = options.isReady();
        return text(res, ready ? 200 : 503, ready ? "ok\n" : "not ready\n");
      }
      default:
        return text(res, 404, "not found\n");
    }
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      logger.error({ err }, "admin request failed");
      if (!res.headersSent) text(res, 500, "internal error\n");
      else res.destroy();
    });
  });

  return {
    name: "admin",
    start: () =>
      new Promise<number>((resolve, reject) => {
        server.once("error", reject);
        server.listen(options.port, options.host ?? "0.0.0.0", () => {
          server.off("error", reject);
          const port = (server.address() as AddressInfo).port;
          logger.info({ port }, "admin server listening");
          resolve(port);
        });
      }),
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections(); // keep-alive scrapers must not hold shutdown open
      }),
  };
}
