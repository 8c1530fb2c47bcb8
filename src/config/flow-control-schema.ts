// `flowControl`: admission control in front of the scheduler (src/flow-control/). Off by default; off means
// every request is routed at once, exactly as without this section. GIE EndpointPickerConfig's `flowControl`
// and `utilization-detector` fields map here (config/translators/endpoint-picker-config.ts).
import { z } from "zod";

const int = (min: number, max: number) =>
  z
    .number({ error: `expected integer ${min}..${max}` })
    .int({ error: `expected integer ${min}..${max}` })
    .min(min, { error: `expected integer ${min}..${max}` })
    .max(max, { error: `expected integer ${min}..${max}` });

export const flowControlSchema = z
  .strictObject({
    enabled: z.boolean({ error: "expected true or false" }).default(false),
    /** Longest queue wait in ms (GIE defaultRequestTTL); a shorter client deadline header wins. 0 = none. */
    requestTtlMs: int(0, 3_600_000).default(30_000),
    /** Bytes queued across all priorities (GIE maxBytes); 0 = unbounded. */
    maxBytes: int(0, 2 ** 50).default(0),
    /** Bytes queued per priority band (GIE priorityBands[].maxBytes, default 1 GB); 0 = unbounded. */
    maxBytesPerBand: int(0, 2 ** 50).default(1_000_000_000),
    /** Requests queued per priority band; 0 = unbounded. */
    maxRequestsPerBand: int(0, 10_000_000).default(10_000),
    /** Distinct fairness ids kept apart; more share one flow (`__other__`), so client ids stay bounded. */
    maxFlows: int(1, 10_000).default(64),
    /** Re-evaluation period while requests wait (also re-evaluated on every completion). */
    dispatchIntervalMs: int(1, 10_000).default(20),
    /** Priority of requests naming no (or an unknown) InferenceObjective. */
    defaultPriority: int(-1_000_000, 1_000_000).default(0),
    /** Saturation (GIE utilization-detector): waiting requests per endpoint counted as saturated. */
    queueDepthThreshold: z.number().positive({ error: "expected a number > 0" }).default(5),
    /** Saturation: KV-cache usage (0..1] counted as saturated. */
    kvCacheUtilThreshold: z
      .number()
      .gt(0, { error: "expected a number in (0, 1]" })
      .max(1, { error: "expected a number in (0, 1]" })
      .default(0.8),
    /**
     * Saturation point per priority band (key: the priority), in (0, 4]: a request of that band passes, and
     * its queue is released, only while the pool's saturation is below it. Unlisted bands use 1 (the
     * detector's own point). A lower point for low bands keeps headroom for the bands above them; a point
     * above 1 suits a band that has pods of its own (priority-reserve-filter), which the pool-wide mean, held
     * at 1 by the bands below, should not hold back.
     */
    saturationLimits: z
      .record(
        z.string().regex(/^-?[0-9]{1,7}$/, { error: "expected an integer priority as the key" }),
        z
          .number()
          .gt(0, { error: "expected a number in (0, 4]" })
          .max(4, { error: "expected a number in (0, 4]" }),
      )
      .default({}),
    /** Static objective name → priority, for pools without InferenceObjective resources (merged under them). */
    objectives: z.record(z.string().min(1), int(-1_000_000, 1_000_000)).default({}),
    /** Watch InferenceObjective resources of the pool (Kubernetes pools only) for their spec.priority. */
    watchObjectives: z.boolean({ error: "expected true or false" }).default(true),
  })
  .prefault({});

export type FlowControlConfig = z.infer<typeof flowControlSchema>;
