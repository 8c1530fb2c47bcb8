// The request streams of the routing benchmark, generated up front from a seed so every policy sees exactly
// the same arrivals, prompts and output lengths. Tokenization is skipped: prompts are token ids drawn
// directly (a customer's system prompt is one fixed random sequence), which is all the engines and kvpick's
// BlockHasher need. Every workload is a list of sessions; a single-request workload is sessions of one turn,
// a multi-turn one feeds each turn's prompt + output into the next turn's prompt (closed loop per session).
import { type Rng, seededRng } from "../../src/sim/random.js";

export interface Stage {
  /** Mean arrivals per second (Poisson) of new sessions. */
  qps: number;
  /** Virtual seconds. */
  seconds: number;
}

export interface Turn {
  question: Uint32Array;
  outputTokens: number;
  /** Virtual seconds between the previous turn's last token and this turn's arrival (0 for turn 0). */
  thinkSeconds: number;
}

export interface Session {
  index: number;
  /** Arrival of turn 0, virtual seconds. */
  start: number;
  /** Stage of turn 0 (per-stage statistics). */
  stage: number;
  /** Prefix group: which shared system prompt the session starts with. */
  group: number;
  /** Flow-control tenant (fairness id) and priority; absent = the model, priority 0 (two-tenant.ts). */
  tenant?: string;
  priority?: number;
  turns: Turn[];
}

export interface Workload {
  name: string;
  title: string;
  /** One paragraph for the report: what the stream is and why. */
  description: string;
  stages: Stage[];
  /** Shared system prompts, by group. */
  systemPrompts: Uint32Array[];
  /** Every prompt prefix the stream shares between requests (parts to concatenate): the ideal bound's warm set. */
  sharedPrefixes: Uint32Array[][];
  sessions: Session[];
}

/** Token ids drawn from the middle of a Qwen-sized vocabulary (no special tokens). */
export function randomTokens(rng: Rng, n: number): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = 1000 + Math.floor(rng() * 140_000);
  return out;
}

const exponential = (rng: Rng, mean: number): number => -Math.log(1 - rng()) * mean;

/** Poisson arrival times over the stages: [time, stage] pairs. */
export function poissonArrivals(rng: Rng, stages: readonly Stage[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let t0 = 0;
  stages.forEach((s, i) => {
    let t = t0;
    for (;;) {
      t += exponential(rng, 1 / s.qps);
      if (t >= t0 + s.seconds) break;
      out.push([t, i]);
    }
    t0 += s.seconds;
  });
  return out;
}

/** Zipf sampler over 0..n−1: P(k) ∝ 1/(k+1)^alpha. */
export function zipfSampler(n: number, alpha: number): (rng: Rng) => number {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k++) {
    sum += 1 / (k + 1) ** alpha;
    cdf[k] = sum;
  }
  return (rng) => {
    const u = rng() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

export interface SharedPrefixOptions {
  seed: number;
  stages: Stage[];
  groups: number;
  usersPerGroup: number;
  systemTokens: number;
  questionTokens: number;
  outputTokens: number;
  /** Customer popularity: null = uniform (inference-perf), else Zipf exponent over groups. */
  zipfAlpha: number | null;
  /** Every request brings its own new question (never repeated) instead of one of the users' fixed ones. */
  freshQuestions?: boolean;
}

/**
 * inference-perf `shared_prefix`: groups × users fixed prompts (system prompt of the group + the user's own
 * fixed question), each arrival picks one of them (uniformly, or a Zipf-popular group then a uniform user).
 */
export function sharedPrefix(
  o: SharedPrefixOptions,
  name: string,
  title: string,
  description: string,
): Workload {
  const rng = seededRng(o.seed);
  const systemPrompts = Array.from({ length: o.groups }, () => randomTokens(rng, o.systemTokens));
  const questions = Array.from({ length: o.groups * o.usersPerGroup }, () =>
    randomTokens(rng, o.questionTokens),
  );
  const pickGroup =
    o.zipfAlpha === null ? (r: Rng) => Math.floor(r() * o.groups) : zipfSampler(o.groups, o.zipfAlpha);
  // Zipf ranks are shuffled onto groups so the hot customers are not simply groups 0, 1, 2.
  const perm = Array.from({ length: o.groups }, (_, i) => i);
  for (let i = perm.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  const sessions: Session[] = poissonArrivals(rng, o.stages).map(([start, stage], index) => {
    const group = perm[pickGroup(rng)]!;
    const user = Math.floor(rng() * o.usersPerGroup);
    return {
      index,
      start,
      stage,
      group,
      turns: [
        {
          question: o.freshQuestions
            ? randomTokens(rng, o.questionTokens)
            : questions[group * o.usersPerGroup + user]!,
          outputTokens: o.outputTokens,
          thinkSeconds: 0,
        },
      ],
    };
  });
  // Each of the groups × users prompts is sent again and again: all of it is a shared prefix (with fresh
  // questions, only the system prompts are).
  const sharedPrefixes = o.freshQuestions
    ? systemPrompts.map((p) => [p])
    : questions.map((q, i) => [systemPrompts[Math.floor(i / o.usersPerGroup)]!, q]);
  return { name, title, description, stages: o.stages, systemPrompts, sharedPrefixes, sessions };
}

export interface BurstOptions {
  seed: number;
  /** Background: the reference shape at a steady rate. */
  background: SharedPrefixOptions;
  /** Seconds between bursts. */
  burstEvery: number;
  /** Requests per burst, all sharing one brand-new system prompt, distinct questions, same instant. */
  burstSize: number;
}

/** Sibling bursts: a new customer shows up with many requests at once over a steady shared-prefix load. */
export function siblingBursts(o: BurstOptions): Workload {
  const base = sharedPrefix(o.background, "bursts", "", "");
  const rng = seededRng(o.seed ^ 0x5bd1e995);
  const total = o.background.stages.reduce((s, x) => s + x.seconds, 0);
  const sessions = [...base.sessions];
  const systemPrompts = [...base.systemPrompts];
  for (let t = o.burstEvery / 2; t < total; t += o.burstEvery) {
    const group = systemPrompts.length;
    systemPrompts.push(randomTokens(rng, o.background.systemTokens));
    let stage = 0;
    for (let acc = 0; stage < o.background.stages.length - 1; stage++) {
      acc += o.background.stages[stage]!.seconds;
      if (t < acc) break;
    }
    for (let k = 0; k < o.burstSize; k++) {
      sessions.push({
        index: -1,
        start: t,
        stage,
        group,
        turns: [
          {
            question: randomTokens(rng, o.background.questionTokens),
            outputTokens: o.background.outputTokens,
            thinkSeconds: 0,
          },
        ],
      });
    }
  }
  sessions.sort((a, b) => a.start - b.start);
  sessions.forEach((s, i) => {
    s.index = i;
  });
  return {
    name: "bursts",
    title: "Sibling bursts",
    description:
      `Background: the reference stream (${o.background.groups} × ${o.background.usersPerGroup}, ` +
      `${o.background.systemTokens}/${o.background.questionTokens}/${o.background.outputTokens} tokens) at ` +
      `${o.background.stages.map((s) => s.qps).join("/")} QPS; every ${o.burstEvery} s a burst of ` +
      `${o.burstSize} requests sharing a brand-new ${o.background.systemTokens}-token system prompt arrives at the same instant.`,
    stages: o.background.stages,
    systemPrompts,
    sharedPrefixes: [
      ...base.sharedPrefixes,
      ...systemPrompts.slice(base.systemPrompts.length).map((p) => [p]),
    ],
    sessions,
  };
}

export interface MultiTurnOptions {
  seed: number;
  /** Session starts per second. */
  stages: Stage[];
  groups: number;
  systemTokens: number;
  turns: number;
  questionTokens: number;
  outputTokens: number;
  meanThinkSeconds: number;
}

/** Conversations: turn k's prompt = turn k−1's prompt + its output + a new question. */
export function multiTurn(o: MultiTurnOptions): Workload {
  const rng = seededRng(o.seed);
  const systemPrompts = Array.from({ length: o.groups }, () => randomTokens(rng, o.systemTokens));
  const sessions: Session[] = poissonArrivals(rng, o.stages).map(([start, stage], index) => ({
    index,
    start,
    stage,
    group: Math.floor(rng() * o.groups),
    turns: Array.from({ length: o.turns }, (_, k) => ({
      question: randomTokens(rng, o.questionTokens),
      outputTokens: o.outputTokens,
      thinkSeconds: k === 0 ? 0 : exponential(rng, o.meanThinkSeconds),
    })),
  }));
  return {
    name: "multi-turn",
    title: "Multi-turn conversations",
    description:
      `Sessions start at ${o.stages.map((s) => s.qps).join("/")} per second (Poisson); each has ${o.turns} turns ` +
      `(${o.groups} shared ${o.systemTokens}-token system prompts, ${o.questionTokens}-token questions, ` +
      `${o.outputTokens} output tokens, think time exp(mean ${o.meanThinkSeconds} s) after each answer); ` +
      "turn k's prompt = turn k−1's prompt + its output + the new question.",
    stages: o.stages,
    systemPrompts,
    sharedPrefixes: systemPrompts.map((p) => [p]),
    sessions,
  };
}

/** Output token ids of (session, turn): the same for every policy, different for every request. */
export function outputTokens(seed: number, session: number, turn: number, n: number): Uint32Array {
  return randomTokens(seededRng((seed * 1_000_003 + session * 64 + turn) >>> 0), n);
}
