import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { MAX_FIELD_CHARS, ModelLabels } from "./label-bounds.js";
import { RequestMetrics } from "./request-metrics.js";

async function setup(known: string[] = ["qwen"]) {
  const registry = new Registry();
  const served = new Set(known);
  const m = new RequestMetrics(registry, new ModelLabels({ serves: (model) => served.has(model) }));
  return { m, text: () => registry.metrics() };
}

describe("RequestMetrics (GIE inference_objective_* families)", () => {
  it("records a completed streamed request in every family with GIE's labels and buckets", async () => {
    const { m, text } = await setup();
    const r = m.recordRequest("qwen", "qwen", 3000);
    expect(await text()).toContain('inference_objective_running_requests{model_name="qwen"} 1');
    r.firstToken(0.3);
    r.complete({
      seconds: 1.3,
      responseBytes: 900,
      usage: { promptTokens: 1000, completionTokens: 11, cachedTokens: 512 },
      firstTokenSeconds: 0.3,
    });
    r.aborted(); // after complete: ignored, the gauge moves once
    const t = await text();
    const l = 'model_name="qwen",target_model_name="qwen"';
    expect(t).toContain(`inference_objective_request_total{${l},priority="0"} 1`);
    expect(t).toContain('inference_objective_running_requests{model_name="qwen"} 0');
    expect(t).toContain(`inference_objective_request_sizes_bucket{le="4096",${l}} 1`);
    expect(t).toContain(`inference_objective_request_sizes_bucket{le="2048",${l}} 0`);
    expect(t).toContain(`inference_objective_response_sizes_bucket{le="1024",${l}} 1`);
    expect(t).toContain(`inference_objective_response_sizes_bucket{le="32778",${l}} 1`); // GIE's own bound
    expect(t).toContain(`inference_objective_request_duration_seconds_bucket{le="1.5",${l}} 1`);
    expect(t).toContain(`inference_objective_request_duration_seconds_bucket{le="1.25",${l}} 0`);
    expect(t).toContain(`inference_objective_request_duration_seconds_bucket{le="3600",${l}} 1`);
    expect(t).toContain(`inference_objective_input_tokens_sum{${l}} 1000`);
    expect(t).toContain(`inference_objective_output_tokens_sum{${l}} 11`);
    expect(t).toContain(`inference_objective_prompt_cached_tokens_sum{${l}} 512`);
    expect(t).toContain(`inference_objective_request_ttft_seconds_sum{${l}} 0.3`);
    // NTPOT = 1.3 s / 11 tokens ≈ 0.118 → bucket 0.2; TPOT = (1.3 − 0.3) / 10 = 0.1.
    expect(t).toContain(
      `inference_objective_normalized_time_per_output_token_seconds_bucket{le="0.1",${l}} 0`,
    );
    expect(t).toContain(
      `inference_objective_normalized_time_per_output_token_seconds_bucket{le="0.2",${l}} 1`,
    );
    expect(t).toMatch(new RegExp(`inference_objective_request_tpot_seconds_sum\\{${l}\\} 0\\.1(0000)?`));
    expect(t).toContain(
      "# HELP inference_objective_request_total [ALPHA] Counter of inference objective requests broken out for each model and target model.",
    );
  });

  it("counts errors, ModelServerError for a failed response, and only moves the gauge on abort", async () => {
    const { m, text } = await setup();
    m.recordError("qwen", "qwen", "EPP_BAD_REQUEST");
    const r = m.recordRequest("qwen", "qwen", 10);
    r.responseStatus(200);
    r.responseStatus(503);
    r.aborted();
    const t = await text();
    const l = 'model_name="qwen",target_model_name="qwen"';
    expect(t).toContain(`inference_objective_request_error_total{${l},error_code="EPP_BAD_REQUEST"} 1`);
    expect(t).toContain(`inference_objective_request_error_total{${l},error_code="ModelServerError"} 1`);
    expect(t).toContain('inference_objective_running_requests{model_name="qwen"} 0');
    expect(t).not.toMatch(/inference_objective_request_duration_seconds_count\{[^}]*\} [1-9]/);
  });

  it("bounds model labels: served names kept, every other client name `other`, all length-capped", async () => {
    const { m, text } = await setup(["served"]);
    for (let i = 0; i < 20; i++) m.recordRequest(`client-${i}`, `client-${i}`, 1).aborted();
    m.recordRequest("served", "served", 1).aborted();
    m.recordRequest("x".repeat(1_000_000), "x".repeat(1_000_000), 1).aborted();
    const t = await text();
    const totals = t.split("\n").filter((line) => line.startsWith("inference_objective_request_total{"));
    expect(totals).toHaveLength(2); // served + other
    expect(t).toContain(
      'inference_objective_request_total{model_name="other",target_model_name="other",priority="0"} 21',
    );
    expect(t).toContain('model_name="served"');
    expect(t.length).toBeLessThan(2_000_000 / 10);
    for (const line of t.split("\n"))
      for (const v of line.matchAll(/model_name="([^"]*)"/g))
        expect(v[1]!.length).toBeLessThanOrEqual(MAX_FIELD_CHARS);
  });
});
