// Reads the few vLLM gauges scheduling needs from a Prometheus text page. A vLLM page is mostly histogram
// buckets we never read (tens to hundreds of KB, fetched every 50 ms per pod), so instead of parsing every
// line we jump to each wanted metric name with indexOf and parse only those lines.
import type { LoadMetrics, LoraInfo } from "./endpoint.js";

export type MetricsParse =
  | { readonly ok: true; readonly metrics: LoadMetrics }
  | { readonly ok: false; readonly reason: string };

interface Sample {
  labels: Record<string, string> | null;
  value: number;
}

/** Sample values of vLLM's gauges, summed (counts) or averaged (fractions) over the `engine` label. */
export function parseVllmMetrics(text: string): MetricsParse {
  try {
    const waiting = samples(text, "vllm:num_requests_waiting", false);
    const running = samples(text, "vllm:num_requests_running", false);
    let usage = samples(text, "vllm:kv_cache_usage_perc", false);
    // vLLM < 0.9 names the gauge gpu_cache_usage_perc; it was hidden in 0.11 and removed later.
    if (usage.length === 0) usage = samples(text, "vllm:gpu_cache_usage_perc", false);
    if (waiting.length === 0) return { ok: false, reason: "no vllm:num_requests_waiting sample" };
    if (running.length === 0) return { ok: false, reason: "no vllm:num_requests_running sample" };
    if (usage.length === 0) return { ok: false, reason: "no vllm:kv_cache_usage_perc sample" };
    const cache = samples(text, "vllm:cache_config_info", true)[0]?.labels ?? null;
    return {
      ok: true,
      metrics: {
        waiting: sumCounts(waiting, "vllm:num_requests_waiting"),
        running: sumCounts(running, "vllm:num_requests_running"),
        // Each data-parallel engine reports the usage of its own, equally sized, KV cache.
        kvCacheUsage: clamp01(
          usage.reduce((s, x) => s + finite(x.value, "kv cache usage"), 0) / usage.length,
        ),
        blockSize: intLabel(cache, "block_size"),
        numGpuBlocks: intLabel(cache, "num_gpu_blocks"),
        prefixCachingHashAlgo: cache?.prefix_caching_hash_algo ?? null,
        lora: loraInfo(samples(text, "vllm:lora_requests_info", true)),
      },
    };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
}

class MalformedError extends Error {}

/** Every sample line of metric `name` (exact name: `…_waiting_by_reason` is not `…_waiting`). */
function samples(text: string, name: string, withLabels: boolean): Sample[] {
  const out: Sample[] = [];
  let from = 0;
  for (;;) {
    const at = text.indexOf(name, from);
    if (at < 0) return out;
    from = at + name.length;
    if (at > 0 && text.charCodeAt(at - 1) !== 10) continue; // not at a line start (e.g. inside # HELP)
    const next = text.charCodeAt(from);
    if (next !== 123 && next !== 32 && next !== 9) continue; // `{`, space, tab; else a longer name
    let eol = text.indexOf("\n", from);
    if (eol < 0) eol = text.length;
    out.push(parseSample(text, from, eol, name, withLabels));
    from = eol;
  }
}

function parseSample(text: string, start: number, end: number, name: string, withLabels: boolean): Sample {
  let i = start;
  let labels: Record<string, string> | null = null;
  if (text.charCodeAt(i) === 123) {
    // No prototype: label names come from the pod's text (a `__proto__="…"` label must stay a label).
    if (withLabels) labels = Object.create(null) as Record<string, string>;
    i++;
    for (;;) {
      while (i < end && (text[i] === " " || text[i] === ",")) i++;
      if (text[i] === "}") break;
      const eq = text.indexOf("=", i);
      if (eq < 0 || eq >= end || text[eq + 1] !== '"')
        throw new MalformedError(`malformed labels in ${name}`);
      const key = text.slice(i, eq).trim();
      let value = "";
      let j = eq + 2;
      for (; j < end && text[j] !== '"'; j++) {
        let ch = text[j];
        if (ch === "\\") {
          j++; // Prometheus escapes: \\ \" \n
          ch = text[j] === "n" ? "\n" : text[j];
        }
        if (labels !== null) value += ch ?? "";
      }
      if (j >= end) throw new MalformedError(`unterminated label value in ${name}`);
      if (labels !== null) labels[key] = value;
      i = j + 1;
    }
    i++;
  }
  const fields = text.slice(i, end).trim().split(/\s+/); // value [timestamp]
  const value = parseValue(fields[0] ?? "");
  if (value === undefined)
    throw new MalformedError(`malformed value ${JSON.stringify(fields[0])} in ${name}`);
  return { labels, value };
}

function parseValue(s: string): number | undefined {
  if (s === "+Inf" || s === "Inf") return Number.POSITIVE_INFINITY;
  if (s === "-Inf") return Number.NEGATIVE_INFINITY;
  if (s === "NaN") return Number.NaN;
  if (s === "" || !/^[-+]?[0-9.]+([eE][-+]?[0-9]+)?$/.test(s)) return undefined;
  const v = Number(s);
  return Number.isNaN(v) ? undefined : v;
}

function finite(v: number, what: string): number {
  if (!Number.isFinite(v)) throw new MalformedError(`${what} is ${v}`);
  return v;
}

function sumCounts(list: Sample[], name: string): number {
  let sum = 0;
  for (const s of list) {
    if (!Number.isFinite(s.value) || s.value < 0) throw new MalformedError(`${name} is ${s.value}`);
    sum += s.value;
  }
  return sum;
}

const clamp01 = (v: number) => Math.min(1, Math.max(0, v));

function intLabel(labels: Record<string, string> | null, key: string): number | null {
  const raw = labels?.[key];
  if (raw === undefined || !/^[0-9]+$/.test(raw)) return null; // vLLM writes "None" before profiling
  return Number(raw);
}

/** The sample with the highest value: vLLM sets each sample to the time it was written. */
function loraInfo(list: Sample[]): LoraInfo | null {
  let latest: Sample | undefined;
  for (const s of list) if (latest === undefined || s.value > latest.value) latest = s;
  if (latest?.labels == null) return null;
  const names = (v: string | undefined) =>
    (v ?? "")
      .split(",")
      .map((x) => x.trim())
      .filter((x) => x !== "");
  return {
    maxLora: intLabel(latest.labels, "max_lora") ?? 0,
    running: names(latest.labels.running_lora_adapters),
    waiting: names(latest.labels.waiting_lora_adapters),
  };
}
