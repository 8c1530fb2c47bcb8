// Running-requests scorer (GIE `running-requests-size-scorer`): min-max over candidates of vLLM's running
// batch (min-max-load.ts).
import { z } from "zod";
import { definePlugin } from "../../registry.js";
import type { Scorer } from "../../types.js";
import { minMaxLoadScores } from "./min-max-load.js";

export const runningRequestsSizeScorer = definePlugin({
  type: "running-requests-size-scorer",
  role: "scorer",
  params: z.strictObject({}),
  create: (name): Scorer => ({
    type: "running-requests-size-scorer",
    name,
    role: "scorer",
    score: (_cycle, candidates) => minMaxLoadScores(candidates, (m) => m.running),
  }),
});
