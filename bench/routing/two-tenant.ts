// The overload workload of issue 17: an interactive tenant (priority 1: 8 customers' 2,000-token system
// prompts + a fresh 200-token question, 100 output tokens) and a batch tenant (priority 0, 10× the requests:
// one of 4 shared 1,000-token preambles + a fresh 2,000-token document, 200 output tokens), both Poisson.
// Offered compute per interactive request ≈ 300 tokens (its system prompt cached), per batch request ≈ 2,200:
// `overload` × the cluster's compute (pods × prefillTokensPerSecond) sets the rates.
import { seededRng } from "../../src/sim/random.js";
import { poissonArrivals, randomTokens, type Session, type Workload } from "./workloads.js";

export interface TwoTenantOptions {
  seed: number;
  pods: number;
  /** Engine compute, tokens/s per pod. */
  tokensPerSecond: number;
  /** Offered load / cluster compute (2 = twice what the pool can serve). */
  overload: number;
  seconds: number;
  /** Leave the batch tenant out (the interactive tenant's unloaded baseline). */
  interactiveOnly?: boolean;
}

const INTERACTIVE = { groups: 8, system: 2000, question: 200, output: 100, work: 300 };
const BATCH = { groups: 4, system: 1000, question: 2000, output: 200, work: 2200, ratio: 10 };

export function twoTenant(o: TwoTenantOptions): Workload & { interactiveQps: number; batchQps: number } {
  const rng = seededRng(o.seed);
  const capacity = o.pods * o.tokensPerSecond * o.overload;
  const interactiveQps = capacity / (INTERACTIVE.work + BATCH.ratio * BATCH.work);
  const batchQps = o.interactiveOnly ? 0 : BATCH.ratio * interactiveQps;
  const systemPrompts = [
    ...Array.from({ length: INTERACTIVE.groups }, () => randomTokens(rng, INTERACTIVE.system)),
    ...Array.from({ length: BATCH.groups }, () => randomTokens(rng, BATCH.system)),
  ];
  const sessions: Session[] = [];
  const add = (qps: number, tenant: "interactive" | "batch") => {
    if (qps <= 0) return;
    const t = tenant === "interactive" ? INTERACTIVE : BATCH;
    const base = tenant === "interactive" ? 0 : INTERACTIVE.groups;
    for (const [start] of poissonArrivals(rng, [{ qps, seconds: o.seconds }])) {
      sessions.push({
        index: 0,
        start,
        stage: 0,
        group: base + Math.floor(rng() * t.groups),
        tenant,
        priority: tenant === "interactive" ? 1 : 0,
        turns: [{ question: randomTokens(rng, t.question), outputTokens: t.output, thinkSeconds: 0 }],
      });
    }
  };
  add(interactiveQps, "interactive");
  add(batchQps, "batch");
  sessions.sort((a, b) => a.start - b.start);
  sessions.forEach((s, i) => {
    s.index = i;
  });
  return {
    name: "two-tenant",
    title: `Interactive (priority 1) + batch (priority 0, 10×) at ${o.overload}× compute`,
    description: "issue 17 overload workload",
    stages: [{ qps: interactiveQps + batchQps, seconds: o.seconds }],
    systemPrompts,
    sharedPrefixes: systemPrompts.map((p) => [p]),
    sessions,
    interactiveQps,
    batchQps,
  };
}
