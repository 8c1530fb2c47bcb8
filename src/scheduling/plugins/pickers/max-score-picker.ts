// Max-score picker (GIE `max-score-picker`): highest total first; equal totals are ordered at random so
// identical pods share load instead of the first-listed one taking every tie.
import { z } from "zod";
import { definePlugin } from "../../registry.js";
import type { Picker, ScoredEndpoint } from "../../types.js";

export const maxScorePicker = definePlugin({
  type: "max-score-picker",
  role: "picker",
  params: z.strictObject({
    /** How many targets to return (a fallback list for the gateway); GIE's parameter name and default. */
    maxNumOfEndpoints: z.number().int().min(1).max(1000).default(1),
  }),
  create: (name, params, context): Picker => ({
    type: "max-score-picker",
    name,
    role: "picker",
    pick(_cycle, scored) {
      if (scored.length === 0) return [];
      if (params.maxNumOfEndpoints === 1) {
        // Hot path: one pass, reservoir-sampling among the ties so each tied candidate is equally likely.
        let best: ScoredEndpoint | undefined;
        let ties = 0;
        for (const s of scored) {
          if (best === undefined || s.total > best.total) {
            best = s;
            ties = 1;
          } else if (s.total === best.total && context.random() * ++ties < 1) best = s;
        }
        return best === undefined ? [] : [best];
      }
      // Shuffle, then stable sort descending: ties end up in random order (GIE does the same).
      const list = [...scored];
      for (let i = list.length - 1; i > 0; i--) {
        const j = Math.floor(context.random() * (i + 1));
        [list[i], list[j]] = [list[j] as ScoredEndpoint, list[i] as ScoredEndpoint];
      }
      list.sort((a, b) => b.total - a.total);
      return list.slice(0, params.maxNumOfEndpoints);
    },
  }),
});
