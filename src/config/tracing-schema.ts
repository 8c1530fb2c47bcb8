// The `tracing` section of the configuration. Off by default; GIE's chart turns it on with `--tracing=true`
// and describes the exporter with the standard OpenTelemetry environment (OTEL_SERVICE_NAME,
// OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, OTEL_TRACES_SAMPLER[_ARG], OTEL_RESOURCE_ATTRIBUTES), which
// observability/tracing.ts reads at start. Only what has no OTEL_* variable lives here.
import { z } from "zod";

export const tracingSchema = z
  .strictObject({
    /** Export one span per ext_proc request (+ a child per routing stage) over OTLP/HTTP. `--tracing`. */
    enabled: z.boolean({ error: "expected true or false" }).default(false),
  })
  .prefault({});

export type TracingConfig = z.infer<typeof tracingSchema>;
