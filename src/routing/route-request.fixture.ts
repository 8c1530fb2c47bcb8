// A request as the ext_proc stream hands it to the director, for tests: POST, no headers, no subset hint.
import type { RouteRequest } from "./route-request.js";

export function aRouteRequest(body: Uint8Array, o: { path?: string; requestId?: string } = {}): RouteRequest {
  return {
    requestId: o.requestId ?? "r",
    method: "POST",
    path: o.path ?? "/v1/chat/completions",
    headers: new Map(),
    body,
    subsetHint: null,
  };
}
