// Bounds the model names that become metric label values: a client chooses `model`, so a label taken from it
// verbatim lets any client grow every per-model series without limit. Interim local rule (the `reliability`
// branch adds the shared label-bounding module; the lead unifies them): a known model keeps its name, anything
// else is `other`, and every value is length-capped.

/** Label value for every model that is not known. */
export const OTHER_MODEL = "other";
/** Longer model names are cut (Kubernetes object names stop at 253; served names are far shorter). */
export const MAX_MODEL_LABEL_CHARS = 128;
/**
 * Unconfigured names admitted first-come, so a deployment that lists no models still gets a per-model
 * breakdown; past this many distinct names the rest are `other`. Small: each admitted name costs one series
 * per bucket of every per-model histogram (~250 series).
 */
export const MAX_ADMITTED_MODELS = 16;

export class ModelLabels {
  readonly #known = new Set<string>();
  readonly #admitted = new Set<string>();

  /** `known`: the served names from the configuration (tokenizer models, LoRA adapters). */
  constructor(known: Iterable<string> = []) {
    this.know(known);
  }

  /** Adds served names (the configuration's models and adapters); they always keep their own label. */
  know(names: Iterable<string>): void {
    for (const name of names) this.#known.add(cap(name));
  }

  /** The bounded label value for a request's model name ("" stays "": no model, as GIE labels it). */
  of(model: string): string {
    if (model === "") return "";
    const label = cap(model);
    if (this.#known.has(label) || this.#admitted.has(label)) return label;
    if (this.#admitted.size < MAX_ADMITTED_MODELS) {
      this.#admitted.add(label);
      return label;
    }
    return OTHER_MODEL;
  }
}

function cap(name: string): string {
  return name.length <= MAX_MODEL_LABEL_CHARS ? name : name.slice(0, MAX_MODEL_LABEL_CHARS);
}
