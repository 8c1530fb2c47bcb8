// The one rule for values a client chooses (model and LoRA adapter names, header values) on their way into
// metric labels, log fields and long-lived keys: bounded in length and in count. A label value is a model
// the pool serves (configured, or announced by the pods: KV-event topics, `vllm:lora_requests_info`), at
// most MAX_LABEL_VALUES of them, and "other" for everything else; a log field is cut to MAX_FIELD_CHARS.
// Without this, thirty requests with distinct 1 MB model names grew /metrics to 63 MB (issue 13 item 6).

/** The label value every model the pool does not serve shares. */
export const OTHER_LABEL = "other";
/** Longest client value kept in a log field or a label (longer model names are never served anyway). */
export const MAX_FIELD_CHARS = 256;
/** Most distinct model label values per family (a pool serves a handful of models and adapters). */
export const MAX_LABEL_VALUES = 100;

/** A client value as a log field: at most `max` characters, with the original length when cut. */
export function logField(value: string, max = MAX_FIELD_CHARS): string {
  return value.length <= max ? value : `${value.slice(0, max)}…(${value.length} chars)`;
}

/** Which model names the pool serves, as the app knows them (declared here, implemented by the app). */
export interface ServedModels {
  /** Called for names not yet admitted as a label value; should be cheap (a few map lookups). */
  serves(model: string): boolean;
}

/** Model name → metric label value: the name for served models, else OTHER_LABEL. */
export class ModelLabels {
  readonly #served: ServedModels;
  readonly #max: number;
  readonly #admitted = new Set<string>();

  constructor(served: ServedModels, maxValues = MAX_LABEL_VALUES) {
    this.#served = served;
    this.#max = maxValues;
  }

  /** The label value of a request's model name ("" stays "": the body did not parse, as GIE labels it). */
  label(model: string): string {
    if (model === "" || this.#admitted.has(model)) return model;
    if (model.length > MAX_FIELD_CHARS || model === OTHER_LABEL) return OTHER_LABEL;
    if (this.#admitted.size >= this.#max || !this.#served.serves(model)) return OTHER_LABEL;
    this.#admitted.add(model);
    return model;
  }
}
