// Per-tenant KV-block budget (issue 17; no peer has one): one tenant's burst must not evict another tenant's
// hot prefixes. vLLM evicts least-recently-used free blocks, so a pod's cache turns over as fast as new blocks
// are written there; a flow that writes most of a pod's new blocks pushes out whatever the other flows keep
// there. This filter remembers, per pod, the new (uncached) blocks kvpick routed to it for each flow — an
// exponentially decayed count, so "recent" means about `halfLifeMs` — and drops the pods where the request's
// flow already wrote more than `budget` of the recent new blocks while another flow also works there. The
// flow's requests go to the pods it already dominates (or where nobody else is) and the other tenants'
// prefixes survive on theirs. It only steers: when every candidate is over budget it keeps them all, so it
// never fails a request and never holds one (holding is flow control's job); and it steers only towards room
// (a kept pod no busier than a dropped one), or a dominant tenant would queue on a few pods while others idle. Flows are the fairness id
// (`x-gateway-inference-fairness-id`, default: the model), bounded to `maxFlows` ids per pod (the rest are
// counted together), so a client-chosen id never grows memory.
import { z } from "zod";
import { definePlugin } from "../../registry.js";
import type { Endpoint, Filter } from "../../types.js";

export const tenantKvBudgetParams = z.strictObject({
  /** Largest share of a pod's recent new blocks one flow may write while another flow works there. */
  budget: z.number().gt(0).max(1).default(0.5),
  /** Half-life of the new-block counts: how long "recent" is. */
  halfLifeMs: z.number().int().min(1).max(3_600_000).default(10_000),
  /** A pod with fewer recent new blocks than this (all flows) is never dropped: too little to evict anything. */
  minPodBlocks: z.number().min(0).default(256),
  /** The request headers naming the flow, first present wins (GIE's, then llm-d's); absent = the model. */
  fairnessHeaders: z
    .array(z.string().min(1))
    .default(() => ["x-gateway-inference-fairness-id", "x-llm-d-inference-fairness-id"]),
  /** Distinct flows counted per pod; later ones share one bucket. */
  maxFlows: z.number().int().min(1).max(10_000).default(64),
});
export type TenantKvBudgetParams = z.infer<typeof tenantKvBudgetParams>;

const OTHER = "\u0000other";

/** Requests waiting at the pod plus those routed since its last scrape. */
const queued = (e: Endpoint): number => (e.metrics?.waiting ?? 0) + (e.dispatched?.requests ?? 0);
/** Longest flow id kept; a longer one is counted as OTHER. */
const MAX_FLOW_CHARS = 256;

/** Decayed new-block counts of one pod. */
class PodWrites {
  readonly byFlow = new Map<string, number>();
  total = 0;
  at = 0;

  decayTo(now: number, halfLifeMs: number): void {
    if (now <= this.at) return;
    const f = 2 ** (-(now - this.at) / halfLifeMs);
    this.at = now;
    this.total *= f;
    for (const [k, v] of this.byFlow) {
      const d = v * f;
      if (d < 0.01) this.byFlow.delete(k);
      else this.byFlow.set(k, d);
    }
  }
}

export const tenantKvBudgetFilter = definePlugin({
  type: "tenant-kv-budget-filter",
  role: "filter",
  params: tenantKvBudgetParams,
  create: (name, p, context): Filter => {
    const now = context.now ?? (() => performance.now());
    const pods = new Map<string, PodWrites>();
    const flowOf = (headers: ReadonlyMap<string, string>, model: string): string => {
      for (const h of p.fairnessHeaders) {
        const v = headers.get(h)?.trim();
        if (v !== undefined && v !== "") return v.length > MAX_FLOW_CHARS ? OTHER : v;
      }
      return model;
    };
    /** The flow's bucket on a pod: its own while the pod tracks fewer than maxFlows flows, else OTHER. */
    const keyIn = (w: PodWrites, flow: string): string =>
      w.byFlow.has(flow) || w.byFlow.size < p.maxFlows ? flow : OTHER;
    const podOf = (address: string, t: number): PodWrites | undefined => {
      const w = pods.get(address);
      w?.decayTo(t, p.halfLifeMs);
      return w;
    };
    return {
      type: "tenant-kv-budget-filter",
      name,
      role: "filter",
      filter(cycle, candidates) {
        if (candidates.length < 2) return candidates;
        const flow = flowOf(cycle.request.headers, cycle.request.model);
        const t = now();
        const keep: Endpoint[] = [];
        let droppedLoad = Number.POSITIVE_INFINITY;
        for (const e of candidates) {
          const w = podOf(e.address, t);
          if (w === undefined || w.total < p.minPodBlocks) {
            keep.push(e);
            continue;
          }
          const mine = w.byFlow.get(keyIn(w, flow)) ?? 0;
          const others = w.total - mine;
          if (others < 1 || mine <= p.budget * w.total) keep.push(e);
          else droppedLoad = Math.min(droppedLoad, queued(e));
        }
        if (keep.length === 0) return candidates;
        // Steer only towards room: when every pod left is busier than a dropped one, the budget would pile the
        // flow onto queues while other pods idle (measured: most of its throughput lost), so it yields.
        let keptLoad = Number.POSITIVE_INFINITY;
        for (const e of keep) keptLoad = Math.min(keptLoad, queued(e));
        return keptLoad > droppedLoad ? candidates : keep;
      },
      preRequest(cycle, picked) {
        const total = cycle.prefixMatch(picked.candidates).totalBlocks;
        const cached = cycle.prefixMatch(picked.candidates).blocks[picked.index] ?? 0;
        const fresh = total - cached;
        if (fresh <= 0) return;
        const address = picked.endpoint.address;
        const t = now();
        let w = podOf(address, t);
        if (w === undefined) {
          w = new PodWrites();
          w.at = t;
          pods.set(address, w);
        }
        const flow = keyIn(w, flowOf(cycle.request.headers, cycle.request.model));
        w.byFlow.set(flow, (w.byFlow.get(flow) ?? 0) + fresh);
        w.total += fresh;
      },
    };
  },
});
