// The admin HTTP port (GIE: 9090): Prometheus text on /metrics from kvpick's own registry, plus plain
// /healthz (process alive) and /readyz (ready to route) for Kubernetes probes. With a bearer token
// (`server.metricsBearerTokenFile`, as GIE's --metrics-endpoint-auth protects /metrics) /metrics answers
// 401 without it; the probes stay open for the kubelet.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import type { BearerToken } from "./bearer-token.js";
import type { Logger } from "./logger.js";

export interface AdminServerOptions {
  registry: Registry;
  /** 0 = any free port. */
  port: number;
  host?: string;
  logger: Logger;
  isLive?(): boolean;
  isReady(): boolean;
  /** Required on /metrics when given. */
  metricsToken?: BearerToken | null;
}

export interface AdminServer {
  start(): Promise<number>;
  close(): Promise<void>;
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
        if (options.metricsToken != null && !(await options.metricsToken.verify(req.headers.authorization))) {
          res.setHeader("www-authenticate", 'Bearer realm="kvpick metrics"');
          return text(res, 401, "unauthorized\n");
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
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections(); // keep-alive scrapers must not hold shutdown open
      }),
  };
}
