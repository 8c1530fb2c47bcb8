// Alibaba ACK Gateway with Inference Extension `InferenceTrafficPolicy` → kvpick's configuration.
// `prefixCache.mode: tracking` (ACK's precise mode, llm-d's indexer underneath) keeps kvpick's precise profile
// and takes its hashing contract from `trackingConfig.indexerConfig.tokenProcessorConfig`; `mode: estimated`
// selects the estimated `prefix-cache-scorer` (GIE's default weights: prefix 3, queue 2, KV utilisation 2)
// with `estimatedConfig` as its parameters (GIE's names). Only the prefix-cache subtree is checked
// strictly: the rest of the resource (metadata, pool reference, other policies) is ACK's business and is
// reported as ignored, so the deployment's YAML loads unchanged.
import { z } from "zod";
import { ConfigError } from "../../errors.js";
import { estimatedPrefixParams } from "../../scheduling/estimated/estimated-prefix-index.js";
import type { Translation } from "./endpoint-picker-config.js";
import { issueLines } from "./endpoint-picker-config.js";
import { llmdPreciseParamsSchema, preciseParamsToConfig } from "./llm-d-precise-params.js";

export const TRAFFIC_POLICY_API_GROUP = "inferenceextension.alibabacloud.com";

const prefixCache = z.strictObject({
  mode: z.enum(["tracking", "estimated"], { error: "expected tracking or estimated" }),
  trackingConfig: llmdPreciseParamsSchema.optional(),
  estimatedConfig: z.record(z.string(), z.unknown()).optional(),
});

const docSchema = z.looseObject({
  apiVersion: z.string().startsWith(`${TRAFFIC_POLICY_API_GROUP}/`, {
    error: `expected ${TRAFFIC_POLICY_API_GROUP}/<version>`,
  }),
  kind: z.literal("InferenceTrafficPolicy"),
  spec: z.looseObject({
    profile: z.strictObject({
      single: z.strictObject({
        trafficPolicy: z.looseObject({ prefixCache: prefixCache.optional() }),
      }),
    }),
  }),
});

export function translateInferenceTrafficPolicy(doc: unknown): Translation {
  const parsed = docSchema.safeParse(doc);
  if (!parsed.success) throw new ConfigError(issueLines(parsed.error));
  const { spec } = parsed.data;
  const ignored: string[] = [];
  for (const k of Object.keys(spec)) if (k !== "profile") ignored.push(`spec.${k}`);
  const policy = spec.profile.single.trafficPolicy;
  for (const k of Object.keys(policy))
    if (k !== "prefixCache") ignored.push(`spec.profile.single.trafficPolicy.${k}`);
  const pc = policy.prefixCache;
  const at = "spec.profile.single.trafficPolicy.prefixCache";
  if (pc === undefined) return { config: {}, ignored }; // load-aware routing only: kvpick's default profile
  if (pc.mode === "estimated") {
    const params = estimatedPrefixParams.safeParse(pc.estimatedConfig ?? {});
    if (!params.success) throw new ConfigError(issueLines(params.error, `${at}.estimatedConfig`));
    if (pc.trackingConfig !== undefined) ignored.push(`${at}.trackingConfig (mode is estimated)`);
    return {
      config: {
        scheduling: {
          scorers: [
            { type: "prefix-cache-scorer", weight: 3, parameters: pc.estimatedConfig ?? {} },
            { type: "queue-scorer", weight: 2, parameters: {} },
            { type: "kv-cache-utilization-scorer", weight: 2, parameters: {} },
          ],
        },
      },
      ignored,
    };
  }
  if (pc.estimatedConfig !== undefined) ignored.push(`${at}.estimatedConfig (mode is tracking)`);
  const t = preciseParamsToConfig(pc.trackingConfig ?? {}, `${at}.trackingConfig.`);
  return { config: t.config, ignored: [...ignored, ...t.ignored] };
}
