// Tracing end to end: kvpick with `tracing.enabled` and the OTEL_* environment GIE's chart sets exports its
// spans to a real OTLP/HTTP receiver started here (a node http server decoding the exporter's JSON). A
// request carrying a sampled `traceparent` must arrive as `gateway.request` in the caller's trace with one
// child per routing stage and the routing attributes; an unsampled new trace (ratio 0) exports nothing.
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/observability/logger.js";
import { until } from "../support/until.js";
import { chat, type ObservedStack, post, startObservedStack } from "../support/observed-stack.js";

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: Record<string, unknown> }[];
  status?: { code?: number };
  startTimeUnixNano: string;
  endTimeUnixNano: string;
}

/** OTLP/JSON attribute value → plain value (intValue is a string or number, per proto3 JSON). */
function attrs(list: OtlpSpan["attributes"]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, value } of list) {
    if ("stringValue" in value) out[key] = value.stringValue;
    else if ("intValue" in value) out[key] = Number(value.intValue);
    else if ("doubleValue" in value) out[key] = value.doubleValue;
    else if ("boolValue" in value) out[key] = value.boolValue;
  }
  return out;
}

describe("OpenTelemetry tracing to a real OTLP/HTTP receiver", () => {
  let receiver: Server;
  let stack: ObservedStack;
  const spans: OtlpSpan[] = [];
  const resources: Record<string, unknown>[] = [];
  const contentTypes = new Set<string>();
  const saved = { ...process.env };

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        if (req.method !== "POST" || req.url !== "/v1/traces") {
          res.writeHead(404).end();
          return;
        }
        contentTypes.add(String(req.headers["content-type"]));
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        for (const rs of body.resourceSpans ?? []) {
          resources.push(attrs(rs.resource?.attributes ?? []));
          for (const ss of rs.scopeSpans ?? []) spans.push(...(ss.spans ?? []));
        }
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      });
    });
    receiver.listen(0, "127.0.0.1");
    await once(receiver, "listening");
    const port = (receiver.address() as AddressInfo).port;
    // As the chart's env block (endpoint with the HTTP port; ratio 0 so only a sampled parent traces).
    Object.assign(process.env, {
      OTEL_SERVICE_NAME: "gateway-api-inference-extension/epp",
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0",
      OTEL_RESOURCE_ATTRIBUTES: "k8s.namespace.name=ns1,k8s.pod.name=epp-0",
    });
    stack = await startObservedStack({
      pods: 2,
      logger: createLogger({ level: "silent" }),
      config: { tracing: { enabled: true } },
    });
  });

  afterAll(async () => {
    await stack?.close();
    receiver?.close();
    process.env = saved;
  });

  it("exports gateway.request in the caller's trace with a child per stage and the routing attributes", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const parentId = "00f067aa0ba902b7";
    const ok = await post(stack.base, chat("How do refunds work?"), {
      traceparent: `00-${traceId}-${parentId}-01`,
    });
    expect(ok.status).toBe(200);
    const badTrace = "0af7651916cd43dd8448eb211c80319c";
    const bad = await post(stack.base, '{"model": "Qwen3-32B", "messages": 7}', {
      traceparent: `00-${badTrace}-b7ad6b7169203331-01`,
    });
    expect(bad.status).toBe(400);
    // A new trace (no traceparent) at ratio 0, and a caller's unsampled trace: nothing exported.
    expect((await post(stack.base, chat("Unsampled?"))).status).toBe(200);
    const unsampled = "11111111111111111111111111111111";
    expect(
      (await post(stack.base, chat("Not sampled"), { traceparent: `00-${unsampled}-2222222222222222-00` }))
        .status,
    ).toBe(200);

    await until(
      () => spans.some((s) => s.traceId === traceId && s.name === "gateway.request"),
      "request span exported",
      15_000,
    );
    await until(() => spans.some((s) => s.traceId === badTrace), "rejected request span exported", 15_000);

    const root = spans.find((s) => s.traceId === traceId && s.name === "gateway.request")!;
    expect(root.parentSpanId).toBe(parentId);
    expect(root.kind).toBe(2); // SPAN_KIND_SERVER
    const a = attrs(root.attributes);
    expect(a["gen_ai.request.model"]).toBe("Qwen3-32B");
    expect(stack.cluster.pods.map((p) => p.address)).toContain(a["kvpick.endpoint"]);
    expect(a["kvpick.prefix_blocks.total"]).toBeGreaterThan(10);
    expect(typeof a["kvpick.prefix_blocks.matched"]).toBe("number");
    expect(typeof a["kvpick.cached_tokens.predicted"]).toBe("number");
    expect(a["kvpick.cached_tokens.actual"]).toBe(0); // first request: nothing cached on the pod yet
    expect(a["kvpick.response"]).toBe("complete");
    expect(a["http.response.status_code"]).toBe(200);
    expect(root.status?.code ?? 0).not.toBe(2);

    const children = spans.filter((s) => s.traceId === traceId && s.parentSpanId === root.spanId);
    expect(children.map((s) => s.name).sort()).toEqual([
      "kvpick.hash",
      "kvpick.parse",
      "kvpick.schedule",
      "kvpick.tokenize",
    ]);
    for (const c of children) {
      expect(BigInt(c.startTimeUnixNano)).toBeGreaterThanOrEqual(BigInt(root.startTimeUnixNano));
      expect(BigInt(c.endTimeUnixNano)).toBeLessThanOrEqual(BigInt(root.endTimeUnixNano));
      expect(BigInt(c.endTimeUnixNano)).toBeGreaterThanOrEqual(BigInt(c.startTimeUnixNano));
    }

    const rejected = spans.find((s) => s.traceId === badTrace && s.name === "gateway.request")!;
    expect(attrs(rejected.attributes)["error.type"]).toBe("EPP_BAD_REQUEST");
    expect(rejected.status?.code).toBe(2); // STATUS_CODE_ERROR

    expect(spans.every((s) => s.traceId === traceId || s.traceId === badTrace)).toBe(true);
    expect(resources[0]).toMatchObject({
      "service.name": "gateway-api-inference-extension/epp",
      "k8s.namespace.name": "ns1",
      "k8s.pod.name": "epp-0",
    });
    expect([...contentTypes]).toEqual(["application/json"]);
  });
});
