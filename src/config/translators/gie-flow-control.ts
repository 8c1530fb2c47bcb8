// GIE / llm-d `EndpointPickerConfig.flowControl` (+ the `utilization-detector` plugin's parameters and the
// `flowControl` feature gate) → kvpick's `flowControl` section. kvpick runs one policy pair — round-robin
// fairness between flows, first-come first-served inside a flow — and one byte/request bound per band;
// other policies and per-band differences are accepted and reported, never silently different.
import { z } from "zod";
import { parseGoDurationMs } from "../../flow-control/request-deadline.js";
import type { FlowControlConfig } from "../flow-control-schema.js";

/** Kubernetes quantity ("1Gi", "500M", "1e9") or a plain integer → bytes. */
export function quantityBytes(v: number | string): number | null {
  if (typeof v === "number") return Number.isInteger(v) && v >= 0 ? v : null;
  const m = /^(\d+(?:\.\d+)?(?:e\d+)?)(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$/.exec(v.trim());
  if (m === null) return null;
  const mult: Record<string, number> = {
    "": 1,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    P: 1e15,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
    Pi: 2 ** 50,
  };
  const bytes = Math.round(Number(m[1]) * mult[m[2] ?? ""]!);
  return Number.isSafeInteger(bytes) ? bytes : null;
}

const bytesField = z.union([z.number(), z.string()]);
const bandSchema = z.strictObject({
  priority: z.number().int(),
  maxBytes: bytesField.optional(),
  maxRequests: z.number().int().min(0).optional(),
  fairnessPolicyRef: z.string().optional(),
  orderingPolicyRef: z.string().optional(),
});

export const gieFlowControlSchema = z.strictObject({
  maxBytes: bytesField.optional(),
  maxRequests: z.union([z.number().int().min(0), z.string()]).optional(),
  defaultRequestTTL: z.string().optional(),
  noEndpointRequestTTL: z.string().optional(),
  enableEviction: z.boolean().optional(),
  defaultPriorityBand: bandSchema.partial({ priority: true }).optional(),
  priorityBands: z.array(bandSchema).optional(),
});

export const utilizationDetectorParams = z.strictObject({
  queueDepthThreshold: z.number().positive().optional(),
  kvCacheUtilThreshold: z.number().gt(0).max(1).optional(),
  metricsStalenessThreshold: z.string().optional(),
  headroom: z.number().min(0).optional(),
});

const SUPPORTED_POLICIES = new Set(["round-robin-fairness-policy", "fcfs-ordering-policy", ""]);

export interface FlowControlTranslation {
  config: Partial<Record<keyof FlowControlConfig, unknown>>;
  problems: string[];
  ignored: string[];
}

/** `section` = the document's `flowControl` (validated here); `detector` = utilization-detector parameters. */
export function translateFlowControl(
  section: unknown,
  gateOn: boolean,
  detector: Record<string, unknown> | null,
): FlowControlTranslation {
  const out: FlowControlTranslation = { config: {}, problems: [], ignored: [] };
  if (gateOn) out.config.enabled = true;
  else if (section !== undefined)
    out.ignored.push(
      "flowControl: set without the flowControl feature gate (GIE ignores it too): flow control stays off",
    );
  if (detector !== null) {
    const d = utilizationDetectorParams.safeParse(detector);
    if (!d.success) {
      for (const i of d.error.issues)
        out.problems.push(`utilization-detector.parameters.${i.path.join(".")}: ${i.message}`);
    } else {
      if (d.data.queueDepthThreshold !== undefined)
        out.config.queueDepthThreshold = d.data.queueDepthThreshold;
      if (d.data.kvCacheUtilThreshold !== undefined)
        out.config.kvCacheUtilThreshold = d.data.kvCacheUtilThreshold;
      if (d.data.metricsStalenessThreshold !== undefined)
        out.ignored.push(
          "utilization-detector.metricsStalenessThreshold: kvpick uses endpoints.staleAfterMs",
        );
      if (d.data.headroom !== undefined)
        out.ignored.push("utilization-detector.headroom: no filter role in kvpick");
    }
  }
  if (section === undefined || section === null) return out;
  const parsed = gieFlowControlSchema.safeParse(section);
  if (!parsed.success) {
    for (const i of parsed.error.issues) {
      const keys = i.code === "unrecognized_keys" ? i.keys : [""];
      for (const k of keys)
        out.problems.push(
          `flowControl${[...i.path, ...(k === "" ? [] : [k])].map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("")}: ${k === "" ? i.message : "unknown field"}`,
        );
    }
    return out;
  }
  const fc = parsed.data;
  const bytes = (v: number | string, at: string): number | null => {
    const b = quantityBytes(v);
    if (b === null) out.problems.push(`${at}: expected bytes or a quantity such as "1Gi"`);
    return b;
  };
  if (fc.maxBytes !== undefined) {
    const b = bytes(fc.maxBytes, "flowControl.maxBytes");
    if (b !== null) out.config.maxBytes = b;
  }
  if (fc.maxRequests !== undefined) {
    const n = typeof fc.maxRequests === "number" ? fc.maxRequests : Number(fc.maxRequests);
    if (!Number.isInteger(n) || n < 0) out.problems.push("flowControl.maxRequests: expected an integer ≥ 0");
    else out.config.maxRequestsPerBand = n;
  }
  if (fc.defaultRequestTTL !== undefined) {
    const ms = parseGoDurationMs(fc.defaultRequestTTL);
    if (ms === null) out.problems.push('flowControl.defaultRequestTTL: expected a duration such as "30s"');
    else out.config.requestTtlMs = Math.round(ms);
  }
  if (fc.noEndpointRequestTTL !== undefined)
    out.ignored.push("flowControl.noEndpointRequestTTL: with no ready endpoint kvpick answers 503 at once");
  if (fc.enableEviction !== undefined) out.ignored.push("flowControl.enableEviction: not supported");
  const bands = [
    ...(fc.defaultPriorityBand === undefined ? [] : [fc.defaultPriorityBand]),
    ...(fc.priorityBands ?? []),
  ];
  const bandBytes: number[] = [];
  const bandRequests: number[] = [];
  bands.forEach((b, i) => {
    const at =
      i === 0 && fc.defaultPriorityBand !== undefined
        ? "flowControl.defaultPriorityBand"
        : `flowControl.priorityBands[${i - (fc.defaultPriorityBand === undefined ? 0 : 1)}]`;
    if (b.maxBytes !== undefined) {
      const v = bytes(b.maxBytes, `${at}.maxBytes`);
      if (v !== null) bandBytes.push(v);
    }
    if (b.maxRequests !== undefined) bandRequests.push(b.maxRequests);
    for (const ref of [b.fairnessPolicyRef, b.orderingPolicyRef])
      if (ref !== undefined && !SUPPORTED_POLICIES.has(ref))
        out.ignored.push(
          `${at}: policy "${ref}" not supported; kvpick uses round-robin-fairness-policy + fcfs-ordering-policy`,
        );
  });
  // One bound for every band: the largest configured (a smaller band limit is reported, not enforced).
  if (bandBytes.length > 0) out.config.maxBytesPerBand = Math.max(...bandBytes);
  if (bandRequests.length > 0) out.config.maxRequestsPerBand = Math.max(...bandRequests);
  if (new Set(bandBytes).size > 1 || new Set(bandRequests).size > 1)
    out.ignored.push(
      "flowControl bands: different per-band limits; kvpick applies the largest to every band",
    );
  return out;
}
