// GIE / llm-d `EndpointPickerConfig` → kvpick's configuration, with GIE's loader rules: strict fields,
// duplicate plugin names and unknown types fail, no profiles → one `default` profile holding every
// filter/scorer/picker, a profile without a picker gets `max-score-picker`, scorer weights default to 1.
// Plugins that only matter to GIE's own machinery (profile handler, data layer, parsers, producers kvpick
// does itself) are accepted and listed in `ignored`. `prefix-cache-scorer` is kvpick's precise scorer when its
// `prefixMatchInfoProducerName` names a precise producer, else GIE's estimated scorer, taking the parameters
// of the approx-prefix-cache-producer it names (or the only one declared). Errors name the field in the
// user's document, e.g.
// `schedulingProfiles[0].plugins[1].pluginRef: unknown plugin "foo"`.
import { z } from "zod";
import { ConfigError } from "../../errors.js";
import { estimatedPrefixParams } from "../../scheduling/estimated/estimated-prefix-index.js";
import { createPluginRegistry } from "../../scheduling/plugins/index.js";
import type { PluginRegistry } from "../../scheduling/registry.js";
import { translateFlowControl } from "./gie-flow-control.js";
import { llmdPreciseParamsSchema, preciseParamsToConfig } from "./llm-d-precise-params.js";
import type { ConfigInput } from "../schema.js";

export const ENDPOINT_PICKER_API_VERSIONS = [
  "inference.networking.x-k8s.io/v1alpha1",
  "llm-d.ai/v1alpha1",
] as const;

/** Types GIE/llm-d configs name that kvpick does not need: accepted, reported, not instantiated. */
const HARMLESS_TYPES = new Set([
  "token-producer",
  "inflight-load-producer",
  "metrics-data-source",
  "core-metrics-extractor",
  "k8s-notification-source",
  "endpoint-notification-source",
  "openai-parser",
  "passthrough-parser",
  "utilization-detector", // its parameters tune flowControl (gie-flow-control.ts)
  "concurrency-detector",
  "request-attribute-reporter",
  "destination-endpoint-served-verifier",
]);
const PROFILE_HANDLERS = new Set(["single-profile-handler"]);
const PRECISE_PRODUCER = "precise-prefix-cache-producer";
const PRECISE_SCORER = "precise-prefix-cache-scorer";
const APPROX_PRODUCER = "approx-prefix-cache-producer";

const docSchema = z.strictObject({
  apiVersion: z.enum(ENDPOINT_PICKER_API_VERSIONS, {
    error: `expected one of ${ENDPOINT_PICKER_API_VERSIONS.join(", ")}`,
  }),
  kind: z.literal("EndpointPickerConfig"),
  featureGates: z.array(z.string()).optional(),
  plugins: z.array(
    z.strictObject({
      name: z.string().min(1).optional(),
      type: z
        .string({ error: "expected a plugin type name" })
        .min(1, { error: "expected a plugin type name" }),
      parameters: z.record(z.string(), z.unknown()).nullish(),
    }),
  ),
  schedulingProfiles: z
    .array(
      z.strictObject({
        name: z.string().min(1),
        plugins: z.array(
          z.strictObject({ pluginRef: z.string().min(1), weight: z.number().min(0).optional() }),
        ),
      }),
    )
    .optional(),
  // GIE runtime sections kvpick has no counterpart for.
  saturationDetector: z.unknown().optional(),
  dataLayer: z.unknown().optional(),
  parser: z.unknown().optional(),
  flowControl: z.unknown().optional(),
});

export interface Translation {
  /** To be merged over kvpick's defaults (and under flags). */
  readonly config: ConfigInput;
  /** Accepted-but-ignored parts, one line each, for a single info log at startup. */
  readonly ignored: readonly string[];
}

/** `["plugins", 2, "type"]` → `plugins[2].type` (the notation GIE users read). */
export function docPath(path: readonly PropertyKey[], prefix = ""): string {
  let out = prefix;
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out === "" ? String(p) : `.${String(p)}`;
  return out === "" ? "(root)" : out;
}

/** Zod issues as problem lines rooted at `prefix`. */
export function issueLines(error: z.ZodError, prefix = ""): string[] {
  return error.issues.flatMap((i) =>
    i.code === "unrecognized_keys"
      ? i.keys.map((k) => `${docPath([...i.path, k], prefix)}: unknown field`)
      : [`${docPath(i.path, prefix)}: ${i.message}`],
  );
}

type Role = "filter" | "scorer" | "picker";
interface Instance {
  readonly name: string;
  readonly type: string;
  readonly parameters: Record<string, unknown>;
  /** Null for accepted-but-ignored plugins (handlers, data layer, producers). */
  readonly role: Role | null;
}

export function translateEndpointPickerConfig(
  doc: unknown,
  registry: PluginRegistry = createPluginRegistry(),
): Translation {
  const parsed = docSchema.safeParse(doc);
  if (!parsed.success) throw new ConfigError(issueLines(parsed.error));
  const spec = parsed.data;
  const problems: string[] = [];
  const ignored: string[] = [];
  let hashing: ConfigInput = {};
  const hashingFrom: string[] = [];

  // Precise producers first: a `prefix-cache-scorer` that names one becomes kvpick's precise scorer.
  const producers = new Set(
    spec.plugins.filter((p) => p.type === PRECISE_PRODUCER).map((p) => p.name ?? p.type),
  );
  // Approximate producers carry the estimated scorer's parameters (GIE ≥ v1.2 / llm-d split them out).
  const approx = new Map(
    spec.plugins.filter((p) => p.type === APPROX_PRODUCER).map((p) => [p.name ?? p.type, p.parameters ?? {}]),
  );
  const instances = new Map<string, Instance>();
  const declare = (inst: Instance) => {
    instances.set(inst.name, inst);
    failed.delete(inst.name);
  };
  /** Names whose declaration already failed: references to them are not reported a second time. */
  const failed = new Set<string>();
  spec.plugins.forEach((p, i) => {
    const at = `plugins[${i}]`;
    const name = p.name ?? p.type;
    failed.add(name); // until it is declared
    if (instances.has(name)) {
      problems.push(`${at}.name: duplicate plugin name "${name}"`);
      return;
    }
    let type = p.type;
    let parameters: Record<string, unknown> = p.parameters ?? {};
    if (type === "prefix-cache-scorer") {
      const { prefixMatchInfoProducerName: producer, ...own } = parameters;
      if (typeof producer === "string" && producers.has(producer)) {
        type = PRECISE_SCORER;
        parameters = {};
      } else if (typeof producer === "string" && approx.has(producer)) {
        parameters = { ...approx.get(producer), ...own };
      } else if (producer !== undefined) {
        problems.push(
          `${at}.parameters.prefixMatchInfoProducerName: no ${PRECISE_PRODUCER} or ${APPROX_PRODUCER} ` +
            `named ${JSON.stringify(producer)}`,
        );
        return;
      } else {
        parameters = approx.size === 1 ? { ...[...approx.values()][0], ...own } : own;
      }
    }
    if (type === APPROX_PRODUCER) {
      const check = estimatedPrefixParams.safeParse(parameters);
      if (!check.success) problems.push(...issueLines(check.error, `${at}.parameters`));
      declare({ name, type, parameters, role: null });
      return;
    }
    if (type === PRECISE_SCORER || type === PRECISE_PRODUCER) {
      // llm-d's parameters describe hashing and event delivery: they become kvpick sections, not plugin params.
      const pp = llmdPreciseParamsSchema.safeParse(parameters);
      if (!pp.success) {
        problems.push(...issueLines(pp.error, `${at}.parameters`));
        return;
      }
      const t = preciseParamsToConfig(pp.data, `${at}.parameters.`);
      ignored.push(...t.ignored);
      if (Object.keys(t.config).length > 0) {
        hashingFrom.push(at);
        if (hashingFrom.length > 1 && JSON.stringify(t.config) !== JSON.stringify(hashing))
          problems.push(`${at}.parameters: precise prefix parameters differ from ${hashingFrom[0]}'s`);
        hashing = t.config;
      }
      parameters = {};
      if (type === PRECISE_PRODUCER) {
        declare({ name, type, parameters, role: null });
        return;
      }
    }
    if (HARMLESS_TYPES.has(type) || PROFILE_HANDLERS.has(type)) {
      if (!PROFILE_HANDLERS.has(type)) ignored.push(`${at} (${type}): kvpick does this itself`);
      declare({ name, type, parameters, role: null });
      return;
    }
    if (type.endsWith("-profile-handler")) {
      problems.push(`${at}.type: profile handler "${type}" is not supported (kvpick runs one profile)`);
      return;
    }
    const factory = registry.get(type);
    if (factory === undefined) {
      problems.push(`${at}.type: unknown plugin type "${type}"`);
      return;
    }
    const check = factory.params.safeParse(parameters);
    if (!check.success) problems.push(...issueLines(check.error, `${at}.parameters`));
    declare({ name, type, parameters, role: factory.role });
  });

  // Rule 4: at most one handler; single-profile-handler (or none) means exactly one profile.
  const handlers = [...instances.values()].filter((p) => PROFILE_HANDLERS.has(p.type));
  if (handlers.length > 1)
    problems.push(`plugins: more than one profile handler (${handlers.map((h) => h.name)})`);
  const profiles = spec.schedulingProfiles ?? [];
  if (profiles.length > 1)
    problems.push(
      `schedulingProfiles: ${profiles.length} profiles; kvpick runs one scheduling profile ` +
        "(single-profile-handler) — keep the one to use",
    );

  let scheduling: NonNullable<ConfigInput["scheduling"]> | undefined;
  const ref = (p: Instance, weight?: number) => ({
    type: p.type,
    name: p.name,
    parameters: p.parameters,
    ...(weight === undefined ? {} : { weight }),
  });
  const build = (members: { inst: Instance; weight?: number | undefined; at: string }[], at: string) => {
    const filters = members.filter((m) => m.inst.role === "filter").map((m) => ref(m.inst));
    const scorers = members.filter((m) => m.inst.role === "scorer").map((m) => ref(m.inst, m.weight ?? 1));
    const pickers = members.filter((m) => m.inst.role === "picker");
    for (const m of members.filter((m) => m.inst.role === null))
      ignored.push(`${m.at} (${m.inst.type}): not a filter, scorer or picker; ignored in the profile`);
    if (pickers.length > 1) problems.push(`${at}: more than one picker (${pickers.map((p) => p.inst.name)})`);
    const picker =
      pickers[0] === undefined ? { type: "max-score-picker", parameters: {} } : ref(pickers[0].inst);
    return { filters, scorers, picker };
  };
  if (profiles.length === 0) {
    // Rule 3: every filter, scorer and picker instance, in declaration order.
    scheduling = build(
      [...instances.values()].map((inst, i) => ({ inst, at: `plugins[${i}]` })),
      "plugins",
    );
  } else {
    profiles.forEach((profile, pi) => {
      const members: { inst: Instance; weight?: number | undefined; at: string }[] = [];
      profile.plugins.forEach((m, mi) => {
        const at = `schedulingProfiles[${pi}].plugins[${mi}]`;
        const inst = instances.get(m.pluginRef);
        if (inst === undefined && failed.has(m.pluginRef)) return;
        if (inst === undefined) problems.push(`${at}.pluginRef: unknown plugin "${m.pluginRef}"`);
        else members.push({ inst, weight: m.weight, at });
      });
      if (pi === 0) scheduling = build(members, `schedulingProfiles[${pi}]`);
    });
  }
  for (const k of ["saturationDetector", "dataLayer", "parser"] as const)
    if (spec[k] !== undefined) ignored.push(`${k}: GIE runtime section, no kvpick counterpart`);
  // Flow control: the feature gate turns it on; the section and the utilization detector tune it.
  const gates = spec.featureGates ?? [];
  for (const g of gates)
    if (g !== "flowControl") ignored.push(`featureGates: "${g}" has no kvpick counterpart`);
  const detector = spec.plugins.find((p) => p.type === "utilization-detector");
  const fc = translateFlowControl(
    spec.flowControl,
    gates.includes("flowControl"),
    detector?.parameters ?? null,
  );
  problems.push(...fc.problems);
  ignored.push(...fc.ignored);
  if (problems.length > 0) throw new ConfigError(problems);
  const merged =
    scheduling === undefined ? hashing.scheduling : { ...(hashing.scheduling ?? {}), ...scheduling };
  return {
    config: {
      ...hashing,
      ...(merged === undefined ? {} : { scheduling: merged }),
      ...(Object.keys(fc.config).length === 0
        ? {}
        : { flowControl: fc.config as ConfigInput["flowControl"] }),
    },
    ignored,
  };
}
