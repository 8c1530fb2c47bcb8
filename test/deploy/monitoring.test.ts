// deploy/monitoring/ against a live kvpick: every metric name in every PromQL expression of the Grafana
// dashboard and the PrometheusRule must be a family a running kvpick exports (with a real Redis shared
// index, two simulated vLLM pods publishing KV events, and streamed, non-streamed and rejected traffic so
// the per-request families carry samples). Also checks the ServiceMonitor / PrometheusRule shapes and that
// the ServiceMonitor selects kvpick's Service and its metrics port. The same live stack, with flow control on
// as well, gives the golden list of every exported family and its type (`test/fixtures/metrics/families.txt`):
// a rename, a type change or a family lost in a refactor fails there; `UPDATE_GOLDEN=1` rewrites it on purpose.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { createLogger } from "../../src/observability/logger.js";
import { chat, type ObservedStack, post, startObservedStack } from "../support/observed-stack.js";
import { type RedisServer, startRedisServer } from "../support/redis-server.js";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const MONITORING = join(ROOT, "deploy", "monitoring");

// biome-ignore lint/suspicious/noExplicitAny: parsed YAML/JSON documents, checked field by field below
type Doc = Record<string, any>;
const yamlDocs = (file: string): Doc[] =>
  parseAllDocuments(readFileSync(file, "utf8")).map((d) => d.toJS() as Doc);

/** Prometheus' own synthetic series (not exported by any target). */
const PROMETHEUS_SYNTHETIC = new Set(["up"]);
const KEYWORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "inf",
  "nan",
]);

/**
 * The metric names a PromQL expression reads: string literals, label matchers `{…}`, ranges `[…]` and the
 * label lists of by/without/on/ignoring/group_* are removed; what is left that is an identifier not followed
 * by `(` (a function) and not a keyword is a metric name.
 */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w.:$])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()/g)) {
    const name = m[1]!;
    if (!KEYWORDS.has(name.toLowerCase())) names.add(name);
  }
  return [...names];
}

function dashboardExprs(): { where: string; expr: string }[] {
  const dash = JSON.parse(readFileSync(join(MONITORING, "kvpick-dashboard.json"), "utf8"));
  const out: { where: string; expr: string }[] = [];
  const walk = (panels: Doc[]) => {
    for (const p of panels) {
      walk(p.panels ?? []);
      for (const t of p.targets ?? []) out.push({ where: `dashboard "${p.title}"`, expr: t.expr });
    }
  };
  walk(dash.panels);
  return out;
}

function ruleExprs(): { where: string; expr: string }[] {
  const [rule] = yamlDocs(join(MONITORING, "prometheusrule.yaml"));
  return rule!.spec.groups.flatMap((g: Doc) =>
    g.rules.map((r: Doc) => ({ where: `alert ${r.alert ?? r.record}`, expr: String(r.expr) })),
  );
}

describe("metricNames (PromQL → metric names)", () => {
  it("keeps metric names and drops functions, matchers, ranges, grouping labels and keywords", () => {
    expect(
      metricNames(
        'histogram_quantile(0.99, sum by (le, stage) (rate(a_seconds_bucket{stage="x",le!="1e6"}[$__rate_interval]))) * 1e6',
      ),
    ).toEqual(["a_seconds_bucket"]);
    expect(
      metricNames(
        'min(b_up) == 0 and on () sum(rate(c_total{outcome="down"}[5m])) > 0 or time() - max by (pod) (d_ts) unless e:rec',
      ).sort(),
    ).toEqual(["b_up", "c_total", "d_ts", "e:rec"]);
    expect(metricNames("vllm:e2e_request_latency_seconds_bucket offset 5m")).toEqual([
      "vllm:e2e_request_latency_seconds_bucket",
    ]);
  });
});

// Both ways of serving ext_proc export the same families (the serving thread's recorder calls land in the
// main registry).
describe.each([false, true])(
  "deploy/monitoring against a live kvpick (server.grpcThread %s)",
  (grpcThread) => {
    let redis: RedisServer;
    let stack: ObservedStack;
    let exposition = "";

    beforeAll(async () => {
      redis = await startRedisServer();
      stack = await startObservedStack({
        pods: 2,
        logger: createLogger({ level: "silent" }),
        config: {
          index: { redis: { url: redis.url, lookupTimeoutMs: 2000 } },
          flowControl: { enabled: true },
          server: { grpcThread },
        },
      });
      // Traffic: non-streamed, streamed with usage, and a rejected request (error family).
      for (let i = 0; i < 3; i++) expect((await post(stack.base, chat(`Question ${i}?`))).status).toBe(200);
      const streamed = await post(
        stack.base,
        chat("Streamed?", { stream: true, stream_options: { include_usage: true } }),
      );
      expect(streamed.status).toBe(200);
      expect(streamed.text).toContain('"usage"');
      expect((await post(stack.base, '{"model":"Qwen3-32B","messages":7}')).status).toBe(400);
      const r = await fetch(`http://127.0.0.1:${stack.ports.metricsPort}/metrics`);
      expect(r.status).toBe(200);
      exposition = await r.text();
    });

    afterAll(async () => {
      await stack?.close();
      await redis?.stop();
    });

    function families(): Map<string, string> {
      const types = new Map<string, string>();
      for (const m of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1]!, m[2]!);
      return types;
    }

    /** A name as PromQL uses it → the family it belongs to (histogram suffixes stripped), or null. */
    function familyOf(name: string, types: Map<string, string>): string | null {
      if (types.has(name)) return name;
      const m = /^(.*)_(bucket|sum|count)$/.exec(name);
      if (m !== null && (types.get(m[1]!) === "histogram" || types.get(m[1]!) === "summary")) return m[1]!;
      return null;
    }

    it("exports exactly the golden families with their types", () => {
      const lines = [...exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => `${m[1]} ${m[2]}`).sort();
      expect(new Set(lines).size).toBe(lines.length); // one registration per family
      const text = `${lines.join("\n")}\n`;
      const fixture = join(ROOT, "test", "fixtures", "metrics", "families.txt");
      if (process.env.UPDATE_GOLDEN === "1") writeFileSync(fixture, text);
      expect(text).toBe(readFileSync(fixture, "utf8"));
    });

    it("every metric in every dashboard and alert expression is exported by kvpick", () => {
      const types = families();
      const exprs = [...dashboardExprs(), ...ruleExprs()];
      expect(exprs.length).toBeGreaterThan(40);
      const missing: string[] = [];
      let checked = 0;
      for (const { where, expr } of exprs) {
        const names = metricNames(expr);
        expect(names.length, `${where}: ${expr}`).toBeGreaterThan(0);
        for (const name of names) {
          if (PROMETHEUS_SYNTHETIC.has(name)) continue;
          checked++;
          if (familyOf(name, types) === null) missing.push(`${where}: ${name}`);
        }
      }
      expect(missing).toEqual([]);
      expect(checked).toBeGreaterThan(60);
    });

    it("the GIE request families the dashboards read carry samples after traffic", () => {
      const types = families();
      const gie = new Set<string>();
      for (const { expr } of [...dashboardExprs(), ...ruleExprs()])
        for (const name of metricNames(expr)) {
          const f = familyOf(name, types);
          if (f?.startsWith("inference_objective_")) gie.add(f);
        }
      // GIE v1.5 dashboard families, plus running requests, TTFT/TPOT and NTPOT.
      for (const f of [
        "inference_objective_request_total",
        "inference_objective_request_error_total",
        "inference_objective_request_duration_seconds",
        "inference_objective_request_sizes",
        "inference_objective_response_sizes",
        "inference_objective_input_tokens",
        "inference_objective_output_tokens",
        "inference_objective_running_requests",
        "inference_objective_request_ttft_seconds",
        "inference_objective_normalized_time_per_output_token_seconds",
      ])
        expect(gie).toContain(f);
      for (const f of gie) {
        // The rejected request never parsed, so its error carries model_name="" (as in GIE).
        const model = f === "inference_objective_request_error_total" ? "" : "Qwen3-32B";
        const sample = new RegExp(`^${f}(_bucket|_sum|_count)?\\{[^}]*model_name="${model}"`, "m");
        expect(exposition, f).toMatch(sample);
      }
    });

    it("ServiceMonitor, PrometheusRule and the reader's token are well-formed and select kvpick", () => {
      const [sm] = yamlDocs(join(MONITORING, "servicemonitor.yaml"));
      expect(sm).toMatchObject({ apiVersion: "monitoring.coreos.com/v1", kind: "ServiceMonitor" });
      expect(sm!.metadata.name).toMatch(/^[a-z0-9-]+$/);
      const [service] = yamlDocs(join(ROOT, "deploy", "base", "service.yaml"));
      expect(service!.metadata.labels).toMatchObject(sm!.spec.selector.matchLabels);
      const ports = (service!.spec.ports as Doc[]).map((p) => p.name);
      expect(sm!.spec.endpoints.length).toBeGreaterThan(0);
      const reader = yamlDocs(join(MONITORING, "metrics-reader.yaml"));
      const secret = reader.find((d) => d.kind === "Secret")!;
      expect(secret.type).toBe("kubernetes.io/service-account-token");
      const role = reader.find((d) => d.kind === "ClusterRole")!;
      expect(role.rules).toContainEqual({ nonResourceURLs: ["/metrics"], verbs: ["get"] });
      for (const e of sm!.spec.endpoints as Doc[]) {
        expect(ports).toContain(e.port);
        expect(e.path).toBe("/metrics");
        expect(e.authorization.type ?? "Bearer").toBe("Bearer");
        expect(e.authorization.credentials).toEqual({ name: secret.metadata.name, key: "token" });
      }

      const [rule] = yamlDocs(join(MONITORING, "prometheusrule.yaml"));
      expect(rule).toMatchObject({ apiVersion: "monitoring.coreos.com/v1", kind: "PrometheusRule" });
      expect(rule!.metadata.name).toMatch(/^[a-z0-9-]+$/);
      const alerts = new Set<string>();
      for (const g of rule!.spec.groups as Doc[]) {
        expect(typeof g.name).toBe("string");
        expect(g.rules.length).toBeGreaterThan(0);
        for (const r of g.rules as Doc[]) {
          expect(typeof r.alert).toBe("string");
          expect(alerts.has(r.alert), `duplicate alert ${r.alert}`).toBe(false);
          alerts.add(r.alert);
          expect(typeof r.expr).toBe("string");
          if (r.for !== undefined) expect(r.for).toMatch(/^\d+[smh]$/);
          expect(["warning", "critical"]).toContain(r.labels.severity);
          expect(typeof r.annotations.summary).toBe("string");
        }
      }

      const dash = JSON.parse(readFileSync(join(MONITORING, "kvpick-dashboard.json"), "utf8"));
      const ids = (dash.panels as Doc[]).map((p) => p.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(dash.uid).toBe("kvpick-epp");
    });
  },
);
