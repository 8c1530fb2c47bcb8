// Plugin type name → factory. A factory owns its parameter schema, so each plugin validates its own
// parameters; the registry turns config references into plugin instances and a profile, collecting every
// problem (unknown type, wrong role, bad parameter, duplicate name) into one ConfigError with field paths.
import type { z } from "zod";
import { formatIssue } from "../format-issue.js";
import { ConfigError } from "../errors.js";
import type {
  Filter,
  Picker,
  Plugin,
  PluginContext,
  PluginRole,
  Scorer,
  SchedulingProfile,
} from "./types.js";

export interface PluginFactory<P = unknown> {
  readonly type: string;
  readonly role: PluginRole;
  /** Validates and defaults `parameters`; strict objects, so a misspelt parameter fails at startup. */
  readonly params: z.ZodType<P>;
  create(name: string, params: P, context: PluginContext): Plugin;
}

/** Keeps a factory's parameter type checked against its `create` while storing it type-erased. */
export const definePlugin = <P>(factory: PluginFactory<P>): PluginFactory => factory as PluginFactory;

/** A plugin as configuration names it (GIE: `type`, optional `name`, free-form `parameters`). */
export interface PluginRef {
  readonly type: string;
  readonly name?: string | undefined;
  readonly parameters?: unknown;
}

export interface ProfileSpec {
  readonly name?: string | undefined;
  readonly filters: readonly PluginRef[];
  readonly scorers: readonly (PluginRef & { readonly weight?: number | undefined })[];
  readonly picker: PluginRef;
}

export class PluginRegistry {
  readonly #factories = new Map<string, PluginFactory>();

  constructor(factories: readonly PluginFactory[] = []) {
    for (const f of factories) this.#register(f);
  }

  #register(factory: PluginFactory): void {
    if (this.#factories.has(factory.type)) throw new Error(`plugin type ${factory.type} registered twice`);
    this.#factories.set(factory.type, factory);
  }

  get(type: string): PluginFactory | undefined {
    return this.#factories.get(type);
  }

  #types(role?: PluginRole): string[] {
    return [...this.#factories.values()]
      .filter((f) => role === undefined || f.role === role)
      .map((f) => f.type);
  }

  /** One plugin instance; throws ConfigError naming `path` (e.g. `scheduling.scorers[1]`). */
  create(ref: PluginRef, role: PluginRole | null, context: PluginContext, path: string): Plugin {
    const problems: string[] = [];
    const plugin = this.#create(ref, role, context, path, problems);
    if (plugin === null) throw new ConfigError(problems);
    return plugin;
  }

  /** A whole profile; every problem in it is reported at once. Scorer weights default to 1, as in GIE. */
  buildProfile(spec: ProfileSpec, context: PluginContext, path = "scheduling"): SchedulingProfile {
    const problems: string[] = [];
    const names = new Map<string, string>();
    const make = <T extends Plugin>(ref: PluginRef, role: T["role"], at: string): T | null => {
      const plugin = this.#create(ref, role, context, at, problems) as T | null;
      if (plugin === null) return null;
      const seen = names.get(plugin.name);
      if (seen !== undefined)
        problems.push(`${at}.name: duplicate plugin name "${plugin.name}" (also ${seen})`);
      names.set(plugin.name, at);
      return plugin;
    };
    const filters = spec.filters.map((ref, i) => make<Filter>(ref, "filter", `${path}.filters[${i}]`));
    const scorers = spec.scorers.map((ref, i) => {
      const at = `${path}.scorers[${i}]`;
      const weight = ref.weight ?? 1;
      if (!(Number.isFinite(weight) && weight >= 0))
        problems.push(`${at}.weight: expected a number ≥ 0, got ${weight}`);
      const scorer = make<Scorer>(ref, "scorer", at);
      return scorer === null ? null : { scorer, weight };
    });
    const picker = make<Picker>(spec.picker, "picker", `${path}.picker`);
    if (problems.length > 0 || picker === null) throw new ConfigError(problems);
    return {
      name: spec.name ?? "default",
      filters: filters.filter((f): f is Filter => f !== null),
      scorers: scorers.filter((s): s is { scorer: Scorer; weight: number } => s !== null),
      picker,
    };
  }

  #create(
    ref: PluginRef,
    role: PluginRole | null,
    context: PluginContext,
    path: string,
    problems: string[],
  ): Plugin | null {
    const factory = this.#factories.get(ref.type);
    if (factory === undefined) {
      const known = this.#types(role ?? undefined).join(", ");
      problems.push(`${path}.type: unknown plugin type "${ref.type}" (known: ${known})`);
      return null;
    }
    if (role !== null && factory.role !== role) {
      problems.push(`${path}.type: "${ref.type}" is a ${factory.role}, expected a ${role}`);
      return null;
    }
    const parsed = factory.params.safeParse(ref.parameters ?? {}, { reportInput: true });
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        // formatIssue names fields relative to the parameters object: re-root them at the plugin's path.
        for (const line of formatIssue(issue).split("; ")) {
          problems.push(
            line.startsWith("(root)") ? `${path}.parameters${line.slice(6)}` : `${path}.parameters.${line}`,
          );
        }
      }
      return null;
    }
    return factory.create(ref.name ?? ref.type, parsed.data, context);
  }
}
