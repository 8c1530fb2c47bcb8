// The demo's built-in load: customers with long system prompts, each request = one customer's system
// prompt + a fresh question (the shape of inference-perf's shared_prefix workload, scaled down), sent as
// streaming chat completions at Poisson arrivals through the front. Every `reportEveryMs` it prints the
// prefix hit rate (Σ usage cached_tokens / Σ prompt_tokens), TTFT p50/p90 (wall clock at the client, to
// the first content chunk) and picks per pod (the front's x-kvpick-destination), for the last interval.
import { type Rng, seededRng } from "../sim/random.js";

export interface TrafficOptions {
  /** Front base URL, e.g. http://127.0.0.1:8080. */
  url: string;
  model: string;
  customers: number;
  /** Words of each customer's system prompt (≈ 1.3 tokens per word with Qwen3). */
  systemPromptWords: number;
  questionWords: number;
  maxTokens: number;
  /** Mean arrivals per second. */
  qps: number;
  reportEveryMs: number;
  out: (line: string) => void;
  seed?: number;
}

interface Sample {
  ttftMs: number;
  prompt: number;
  cached: number;
  pod: string;
}

const WORDS =
  "account billing refund policy order invoice delivery warranty service contract premium support".split(" ");

function text(rng: Rng, words: number, prefix: string): string {
  const out: string[] = [prefix];
  for (let i = 0; i < words; i++) out.push(WORDS[Math.floor(rng() * WORDS.length)]!);
  return out.join(" ");
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export class TrafficGenerator {
  readonly #o: TrafficOptions;
  readonly #rng: Rng;
  readonly #systems: string[];
  #samples: Sample[] = [];
  #errors = 0;
  #sent = 0;
  readonly #picks = new Map<string, number>();
  #timer: NodeJS.Timeout | null = null;
  #report: NodeJS.Timeout | null = null;
  readonly #inflight = new Set<Promise<void>>();
  readonly #abort = new AbortController();

  constructor(options: TrafficOptions) {
    this.#o = options;
    this.#rng = seededRng(options.seed ?? 42);
    this.#systems = Array.from({ length: options.customers }, (_, c) =>
      text(seededRng(1000 + c), options.systemPromptWords, `You are the assistant of customer ${c}.`),
    );
  }

  start(): void {
    this.#schedule();
    this.#report = setInterval(() => this.#o.out(this.summaryLine()), this.#o.reportEveryMs);
  }

  async stop(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#report) clearInterval(this.#report);
    this.#abort.abort();
    await Promise.allSettled([...this.#inflight]);
  }

  /** One summary of the interval since the last call (and resets it). */
  summaryLine(): string {
    const s = this.#samples;
    this.#samples = [];
    const ttft = s.map((x) => x.ttftMs).sort((a, b) => a - b);
    const prompt = s.reduce((n, x) => n + x.prompt, 0);
    const cached = s.reduce((n, x) => n + x.cached, 0);
    for (const x of s) this.#picks.set(x.pod, (this.#picks.get(x.pod) ?? 0) + 1);
    const picks = [...this.#picks]
      .sort()
      .map(([p, n]) => `${p}=${n}`)
      .join(" ");
    const errors = this.#errors;
    this.#errors = 0;
    return (
      `traffic: ${s.length} ok, ${errors} failed | prefix hit rate ${prompt === 0 ? "n/a" : `${((100 * cached) / prompt).toFixed(1)}%`}` +
      ` | TTFT p50 ${quantile(ttft, 0.5).toFixed(0)} ms p90 ${quantile(ttft, 0.9).toFixed(0)} ms | picks (total) ${picks}`
    );
  }

  #schedule(): void {
    const gap = -Math.log(1 - this.#rng()) / this.#o.qps;
    this.#timer = setTimeout(() => {
      const p = this.#one().finally(() => this.#inflight.delete(p));
      this.#inflight.add(p);
      this.#schedule();
    }, gap * 1000);
  }

  async #one(): Promise<void> {
    const o = this.#o;
    const c = Math.floor(this.#rng() * o.customers);
    const n = this.#sent++;
    const body = {
      model: o.model,
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: o.maxTokens,
      messages: [
        { role: "system", content: this.#systems[c] },
        { role: "user", content: text(this.#rng, o.questionWords, `Question ${n}:`) },
      ],
    };
    const started = performance.now();
    try {
      const r = await fetch(`${o.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: this.#abort.signal,
      });
      if (r.status !== 200 || r.body === null) {
        this.#errors++;
        await r.body?.cancel();
        return;
      }
      let ttft = -1;
      let tail = "";
      const decoder = new TextDecoder();
      for await (const chunk of r.body) {
        if (ttft < 0) ttft = performance.now() - started;
        tail = (tail + decoder.decode(chunk as Uint8Array, { stream: true })).slice(-4096);
      }
      const m = /"prompt_tokens":(\d+).*"cached_tokens":(\d+)/.exec(tail);
      this.#samples.push({
        ttftMs: ttft,
        prompt: Number(m?.[1] ?? 0),
        cached: Number(m?.[2] ?? 0),
        pod: r.headers.get("x-kvpick-destination") ?? "?",
      });
    } catch {
      if (!this.#abort.signal.aborted) this.#errors++;
    }
  }
}
