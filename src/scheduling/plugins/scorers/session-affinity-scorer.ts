// Session affinity (llm-d `session-affinity-scorer`): 1 for the endpoint that served the request's session
// before, 0 for the others, so a multi-turn conversation stays on the pod holding its KV cache while that pod
// is a healthy candidate (an unhealthy or filtered pod is simply not a candidate, and the session moves).
// The session is named by a request header (default `x-session-token`). llm-d's token is base64("ns/pod"),
// returned to the client in the response; kvpick accepts that form too (matched against the pod's name), and
// otherwise remembers session → endpoint itself from its own picks, in a bounded LRU: a client-chosen session
// value never grows memory past `maxSessions`.
import { z } from "zod";
import { definePlugin } from "../../registry.js";
import type { Endpoint, Scorer } from "../../types.js";

export const sessionAffinityParams = z.strictObject({
  /** The request header naming the session. */
  sessionHeader: z.string().min(1).default("x-session-token"),
  /** Sessions remembered (least recently used forgotten first). */
  maxSessions: z.number().int().min(1).max(10_000_000).default(100_000),
  /** A session not seen for this long is forgotten (llm-d's server-side x-session-id TTL is 300 s). */
  ttlMs: z.number().int().min(1).max(86_400_000).default(300_000),
});

/** Longest session value kept (a longer one is hashed down to nothing: never a key). */
const MAX_SESSION_CHARS = 256;

export const sessionAffinityScorer = definePlugin({
  type: "session-affinity-scorer",
  role: "scorer",
  params: sessionAffinityParams,
  create: (name, params, context): Scorer => {
    const now = context.now ?? (() => performance.now());
    /** session → { address, last seen }; insertion order = recency. */
    const sessions = new Map<string, { address: string; at: number }>();
    const sessionOf = (headers: ReadonlyMap<string, string>): string | null => {
      const v = headers.get(params.sessionHeader)?.trim();
      return v === undefined || v === "" || v.length > MAX_SESSION_CHARS ? null : v;
    };
    const remembered = (session: string): string | null => {
      const hit = sessions.get(session);
      if (hit === undefined) return null;
      if (now() - hit.at > params.ttlMs) {
        sessions.delete(session);
        return null;
      }
      return hit.address;
    };
    return {
      type: "session-affinity-scorer",
      name,
      role: "scorer",
      score(cycle, candidates) {
        const out = new Float64Array(candidates.length);
        const session = sessionOf(cycle.request.headers);
        if (session === null) return out;
        const address = remembered(session);
        const pod = address === null ? podFromToken(session) : null;
        for (let i = 0; i < candidates.length; i++) {
          const e = candidates[i] as Endpoint;
          if (address !== null ? e.address === address : pod !== null && matchesPod(e, pod)) out[i] = 1;
        }
        return out;
      },
      preRequest(cycle, picked) {
        const session = sessionOf(cycle.request.headers);
        if (session === null) return;
        sessions.delete(session);
        sessions.set(session, { address: picked.endpoint.address, at: now() });
        if (sessions.size > params.maxSessions) {
          const oldest = sessions.keys().next().value;
          if (oldest !== undefined) sessions.delete(oldest);
        }
      },
    };
  },
});

/** llm-d's token: base64 of "namespace/pod"; null when the value is not of that form. */
function podFromToken(token: string): string | null {
  if (!/^[A-Za-z0-9+/=_-]+$/.test(token)) return null;
  const text = Buffer.from(token, "base64").toString("utf8");
  return /^[a-z0-9][a-z0-9.-]*\/[a-z0-9][a-z0-9.-]*$/.test(text) ? text : null;
}

function matchesPod(e: Endpoint, nsName: string): boolean {
  if (e.pod === nsName) return true;
  const name = nsName.slice(nsName.indexOf("/") + 1);
  return e.name === name || e.name === nsName;
}
