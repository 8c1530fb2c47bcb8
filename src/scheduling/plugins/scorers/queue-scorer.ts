// Queue scorer (GIE `queue-scorer`): min-max over candidates of vLLM's waiting queue (min-max-load.ts).
import { z } from "zod";
import { definePlugin } from "../../registry.js";
import type { Scorer } from "../../types.js";
import { minMaxLoadScores } from "./min-max-load.js";

export const queueScorer = definePlugin({
  type: "queue-scorer",
  role: "scorer",
  params: z.strictObject({}),
  create: (name): Scorer => ({
    type: "queue-scorer",
    name,
    role: "scorer",
    score: (_cycle, candidates) => minMaxLoadScores(candidates, (m) => m.waiting),
  }),
});
