// Random picker (GIE `random-picker`): ignores the scores and returns `maxNumOfEndpoints` candidates in
// uniformly random order. A baseline, and a way to spread load when scores carry no signal.
import { z } from "zod";
import { definePlugin } from "../../registry.js";
import type { Picker, ScoredEndpoint } from "../../types.js";

export const randomPicker = definePlugin({
  type: "random-picker",
  role: "picker",
  params: z.strictObject({
    maxNumOfEndpoints: z.number().int().min(1).max(1000).default(1),
  }),
  create: (name, params, context): Picker => ({
    type: "random-picker",
    name,
    role: "picker",
    pick(_cycle, scored) {
      const list = [...scored];
      const n = Math.min(params.maxNumOfEndpoints, list.length);
      // Partial Fisher-Yates: only the first n slots need to be drawn.
      for (let i = 0; i < n; i++) {
        const j = i + Math.floor(context.random() * (list.length - i));
        [list[i], list[j]] = [list[j] as ScoredEndpoint, list[i] as ScoredEndpoint];
      }
      return list.slice(0, n);
    },
  }),
});
