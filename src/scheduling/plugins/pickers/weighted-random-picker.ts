// Weighted random picker (GIE `weighted-random-picker`): draws `maxNumOfEndpoints` candidates without
// replacement with probability proportional to their total score, by A-Res (key = U^(1/score), largest keys
// win). Candidates scoring 0 come after every positive one, in random order; all 0 → uniformly random.
import { z } from "zod";
import { definePlugin } from "../../registry.js";
import type { Picker, ScoredEndpoint } from "../../types.js";

export const weightedRandomPicker = definePlugin({
  type: "weighted-random-picker",
  role: "picker",
  params: z.strictObject({
    maxNumOfEndpoints: z.number().int().min(1).max(1000).default(1),
  }),
  create: (name, params, context): Picker => ({
    type: "weighted-random-picker",
    name,
    role: "picker",
    pick(_cycle, scored) {
      // ln(U)/w orders like U^(1/w) without underflow for small weights; zero weights get −∞ − U, so they
      // sort after every positive candidate and in random order among themselves.
      const keyed = scored.map((s) => {
        const u = context.random();
        const w = Number.isFinite(s.total) && s.total > 0 ? s.total : 0;
        return { s, key: w > 0 ? Math.log(u === 0 ? Number.MIN_VALUE : u) / w : Number.NEGATIVE_INFINITY, u };
      });
      keyed.sort((a, b) => (a.key === b.key ? a.u - b.u : b.key - a.key));
      return keyed.slice(0, params.maxNumOfEndpoints).map((k): ScoredEndpoint => k.s);
    },
  }),
});
