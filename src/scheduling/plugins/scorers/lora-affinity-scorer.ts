// LoRA affinity scorer (GIE `lora-affinity-scorer`), from `vllm:lora_requests_info`: 1.0 when the adapter is
// already running on the pod, 0.8 when the pod has room to load it (running + waiting < max_lora), 0.6 when
// it is queued there, else 0. Loading an adapter costs a swap, so pods that hold it win.
// The adapter is `request.loraAdapter` when the director knows it; `null` there means "base model" and
// scores every pod 1 (no preference). When unknown (undefined), the target model is taken as the adapter name,
// as GIE does. Pods without LoRA metrics (LoRA disabled, not scraped) score 0 for an adapter request.
import { z } from "zod";
import type { LoraInfo } from "../../../endpoints/endpoint.js";
import { definePlugin } from "../../registry.js";
import type { Scorer } from "../../types.js";

/** One pod's affinity for `adapter`. */
export function loraAffinity(lora: LoraInfo | null, adapter: string): number {
  if (lora === null) return 0;
  if (lora.running.includes(adapter)) return 1;
  if (lora.running.length + lora.waiting.length < lora.maxLora) return 0.8;
  if (lora.waiting.includes(adapter)) return 0.6;
  return 0;
}

export const loraAffinityScorer = definePlugin({
  type: "lora-affinity-scorer",
  role: "scorer",
  params: z.strictObject({}),
  create: (name): Scorer => ({
    type: "lora-affinity-scorer",
    name,
    role: "scorer",
    score(cycle, candidates) {
      const out = new Float64Array(candidates.length);
      const { loraAdapter, targetModel } = cycle.request;
      if (loraAdapter === null) return out.fill(1);
      const adapter = loraAdapter ?? targetModel;
      candidates.forEach((e, i) => {
        if (e.metricsState !== "fresh" || e.metrics === null) return;
        out[i] = loraAffinity(e.metrics.lora, adapter);
      });
      return out;
    },
  }),
});
