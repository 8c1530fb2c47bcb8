// Reads the few model-server gauges scheduling needs from a Prometheus text page. A vLLM page is mostly
// histogram buckets we never read (tens to hundreds of KB, fetched every 50 ms per pod), so instead of parsing
// every line we jump to each wanted metric name with indexOf and parse only those lines. The names default to
// vLLM's; GIE's metric flags (`--total-queued-requests-metric "sglang:num_queue_reqs"`, Triton's
// `nv_trt_llm_request_metrics{request_type=waiting}`) swap them, so SGLang / TensorRT-LLM pods are read too.
import type { LoadMetrics, LoraInfo } from "./endpoint.js";

export type MetricsParse =
  | { readonly ok: true; readonly metrics: LoadMetrics }
  | { readonly ok: false; readonly reason: string };

interface Sample {
  labels: Record<string, string> | null;
  value: number;
}

/** One metric as GIE's flags name it: `name` or `name{label=value,…}` (samples must carry those labels). */
export interface MetricSpec {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** Which metric holds each reading; lora and cacheInfo may be null (not scraped). */
export interface MetricSpecs {
  readonly waiting: MetricSpec;
  readonly running: MetricSpec;
  readonly kvCacheUsage: MetricSpec;
  readonly loraInfo: MetricSpec | null;
  readonly cacheInfo: MetricSpec | null;
}

/** The metric-name settings as configured (`endpoints.metricNames`); "" = not scraped (lora, cache info). */
export interface MetricNames {
  waiting: string;
  running: string;
  kvCacheUsage: string;
  loraInfo: string;
  cacheInfo: string;
}

export const VLLM_METRIC_NAMES: Readonly<MetricNames> = {
  waiting: "vllm:num_requests_waiting",
  running: "vllm:num_requests_running",
  kvCacheUsage: "vllm:kv_cache_usage_perc",
  loraInfo: "vllm:lora_requests_info",
  cacheInfo: "vllm:cache_config_info",
};

/**
 * Parses GIE's metric spec syntax (`pkg/epp/backend/metrics/metrics_spec.go`): `name`, `name{k=v,k2=v2}`;
 * label values unquoted (surrounding double quotes, as a shell or YAML may leave them, are dropped).
 * "" → null. Throws an Error naming the problem.
 */
export function parseMetricSpec(text: string): MetricSpec | null {
  const spec = unquote(text.trim());
  if (spec === "") return null;
  const open = spec.indexOf("{");
  const close = spec.indexOf("}");
  if (open === -1 && close === -1) return checkName({ name: spec, labels: {} }, text);
  if (open === -1 || close === -1 || close <= open + 1 || close !== spec.length - 1)
    throw new Error(`invalid metric spec ${JSON.stringify(text)}: expected name or name{label=value,...}`);
  const labels: Record<string, string> = {};
  for (const pair of spec.slice(open + 1, close).split(",")) {
    const parts = pair.split("=");
    const key = parts[0]?.trim() ?? "";
    const value = unquote(parts[1]?.trim() ?? "");
    if (parts.length !== 2 || key === "" || value === "")
      throw new Error(
        `invalid label pair ${JSON.stringify(pair.trim())} in metric spec ${JSON.stringify(text)}`,
      );
    labels[key] = value;
  }
  return checkName({ name: spec.slice(0, open).trim(), labels }, text);
}

function checkName(spec: MetricSpec, text: string): MetricSpec {
  if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(spec.name))
    throw new Error(`invalid metric name in spec ${JSON.stringify(text)}`);
  return spec;
}

const unquote = (s: string) => (s.length >= 2 && s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1) : s);

/** Compiles configured names; the three load gauges are required. Throws an Error naming the key. */
export function metricSpecs(names: MetricNames): MetricSpecs {
  const at = (key: keyof MetricNames) => {
    try {
      return parseMetricSpec(names[key]);
    } catch (err) {
      throw new Error(`endpoints.metricNames.${key}: ${(err as Error).message}`);
    }
  };
  const required = (key: "waiting" | "running" | "kvCacheUsage") => {
    const spec = at(key);
    if (spec === null) throw new Error(`endpoints.metricNames.${key}: required (scheduling reads it)`);
    return spec;
  };
  return {
    waiting: required("waiting"),
    running: required("running"),
    kvCacheUsage: required("kvCacheUsage"),
    loraInfo: at("loraInfo"),
    cacheInfo: at("cacheInfo"),
  };
}

const VLLM_SPECS = metricSpecs(VLLM_METRIC_NAMES);
/** vLLM < 0.9 names the gauge gpu_cache_usage_perc; it was hidden in 0.11 and removed later. */
const VLLM_OLD_USAGE: MetricSpec = { name: "vllm:gpu_cache_usage_perc", labels: {} };

/** Sample values of the load gauges, summed (counts) or averaged (fractions) over the other labels. */
export function parseVllmMetrics(text: string, specs: MetricSpecs = VLLM_SPECS): MetricsParse {
  try {
    const waiting = specSamples(text, specs.waiting, true);
    const running = specSamples(text, specs.running, false);
    let usage = specSamples(text, specs.kvCacheUsage, false);
    if (usage.length === 0 && specs.kvCacheUsage.name === VLLM_METRIC_NAMES.kvCacheUsage)
      usage = specSamples(text, VLLM_OLD_USAGE, false);
    if (waiting.length === 0) return { ok: false, reason: `no ${specs.waiting.name} sample` };
    if (running.length === 0) return { ok: false, reason: `no ${specs.running.name} sample` };
    if (usage.length === 0) return { ok: false, reason: `no ${specs.kvCacheUsage.name} sample` };
    const cache =
      specs.cacheInfo === null ? null : (specSamples(text, specs.cacheInfo, true)[0]?.labels ?? null);
    return {
      ok: true,
      metrics: {
        waiting: sumCounts(waiting, specs.waiting.name),
        running: sumCounts(running, specs.running.name),
        // Each data-parallel engine reports the usage of its own, equally sized, KV cache.
        kvCacheUsage: clamp01(
          usage.reduce((s, x) => s + finite(x.value, "kv cache usage"), 0) / usage.length,
        ),
        // vLLM: block_size / num_gpu_blocks; SGLang: page_size / num_pages.
        blockSize: intLabel(cache, "block_size") ?? intLabel(cache, "page_size"),
        numGpuBlocks: intLabel(cache, "num_gpu_blocks") ?? intLabel(cache, "num_pages"),
        prefixCachingHashAlgo: cache?.prefix_caching_hash_algo ?? null,
        lora: specs.loraInfo === null ? null : loraInfo(specSamples(text, specs.loraInfo, true)),
        models: modelNames(waiting),
      },
    };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
}

/** Most served names kept per pod, and their length cap: a pod serves one model (plus adapters, reported apart). */
const MAX_MODEL_NAMES = 8;
const MAX_MODEL_NAME_CHARS = 256;

/** The `model_name` label values of a load gauge (vLLM labels every gauge with its served model name). */
function modelNames(samples: readonly Sample[]): string[] {
  const out: string[] = [];
  for (const s of samples) {
    const name = s.labels?.model_name;
    if (name === undefined || name.length === 0 || name.length > MAX_MODEL_NAME_CHARS) continue;
    if (!out.includes(name)) out.push(name);
    if (out.length === MAX_MODEL_NAMES) break;
  }
  return out;
}

/** The samples of `spec.name` carrying every label of the spec. */
function specSamples(text: string, spec: MetricSpec, withLabels: boolean): Sample[] {
  const wanted = Object.entries(spec.labels);
  if (wanted.length === 0) return samples(text, spec.name, withLabels);
  return samples(text, spec.name, true).filter((s) => wanted.every(([k, v]) => s.labels?.[k] === v));
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
