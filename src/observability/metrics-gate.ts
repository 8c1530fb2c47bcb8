// Who may read /metrics: the static bearer-token file when one is configured; else, in Kubernetes with
// server.metricsEndpointAuth (GIE's default), TokenReview + SubjectAccessReview; else open (said at startup).
import type { MetricsGate } from "./admin-server.js";
import { BearerToken } from "./bearer-token.js";
import type { Logger } from "./logger.js";
import { KubeMetricsAuth, type ReviewClient } from "./metrics-auth.js";

export type MetricsAuthMode = "token-file" | "kubernetes" | "open";

export interface MetricsAuthSettings {
  /** server.metricsBearerTokenFile: a file holding the one accepted token, or null. */
  bearerTokenFile: string | null;
  /** server.metricsEndpointAuth: review callers' tokens with the API server when in Kubernetes. */
  endpointAuth: boolean;
  /** Kubernetes credentials are at hand (config/startup-checks.ts `inKubernetes`). */
  inKubernetes: boolean;
}

export function chooseMetricsAuth(s: MetricsAuthSettings): MetricsAuthMode {
  if (s.bearerTokenFile !== null) return "token-file";
  return s.endpointAuth && s.inKubernetes ? "kubernetes" : "open";
}

/** The gate for `mode`; `reviewClient` is called only in Kubernetes mode (it builds the API client). */
export function createMetricsGate(
  mode: MetricsAuthMode,
  s: { bearerTokenFile: string | null; logger: Logger; reviewClient: () => ReviewClient },
): MetricsGate | null {
  if (mode === "token-file")
    return new BearerToken(s.bearerTokenFile!, s.logger.child({ component: "admin" }));
  if (mode === "kubernetes") return new KubeMetricsAuth({ client: s.reviewClient(), logger: s.logger });
  return null;
}
