// Which requests are for a LoRA adapter, and how vLLM keys their blocks. vLLM mixes the adapter into every
// block hash (the `extra` tuple): its int id up to v0.11.0, its name from v0.11.1 on
// (shared/reference/vllm-kv-events.md §2.1); the prompt is rendered and tokenized with the base model's
// tokenizer. An adapter is known from `tokenizer.loras`, or — when vLLM keys by name — from the adapter names
// the pods report in `vllm:lora_requests_info`.
import { MAX_FIELD_CHARS } from "../observability/label-bounds.js";
import type { EndpointSource } from "../scheduling/types.js";
import { ConfigError } from "../errors.js";

export interface LoraResolution {
  /** For lora-affinity-scorer: the adapter name; null = the base model; undefined = not known either way. */
  readonly adapter: string | null | undefined;
  /** The served model whose tokenizer renders and tokenizes the prompt. */
  readonly tokenizerModel: string;
  /** The hasher's LoRA extra (BlockExtras.lora): the adapter's int id or name; null for the base model. */
  readonly hashKey: number | string | null;
  /** False for an adapter whose key kvpick cannot know (id scheme, id not configured): route without hashes. */
  readonly hashable: boolean;
}

/** How long a "the pods report this adapter" answer is reused before looking at the pods again. */
const DISCOVERY_TTL_MS = 10_000;
/** Model names are client-chosen: the discovery memo stays bounded. */
const MAX_REMEMBERED = 1000;

/** The tokenizer settings LoRA resolution reads (config/schema.ts `Config["tokenizer"]` fits). */
export interface LoraSettings {
  readonly loraKey: "auto" | "id" | "name";
  readonly hashAlgo: string;
  /** Adapter name → its vLLM int id and base model (whose tokenizer it uses). */
  readonly loras: Readonly<
    Record<string, { readonly id?: number | undefined; readonly baseModel?: string | undefined }>
  >;
  readonly models: Readonly<Record<string, unknown>>;
}

export class LoraAdapters {
  readonly keyScheme: "id" | "name";
  readonly #loras: LoraSettings["loras"];
  readonly #models: ReadonlySet<string>;
  readonly #endpoints: EndpointSource | null;
  readonly #now: () => number;
  readonly #seen = new Map<string, { adapter: boolean; at: number }>();

  /** Throws ConfigError when the id scheme is in force and an adapter has no id. */
  constructor(
    config: LoraSettings,
    endpoints: EndpointSource | null = null,
    now: () => number = () => performance.now(),
  ) {
    this.keyScheme =
      config.loraKey === "auto" ? (config.hashAlgo === "sha256_cbor_64bit" ? "id" : "name") : config.loraKey;
    this.#loras = config.loras;
    this.#models = new Set(Object.keys(config.models));
    this.#endpoints = endpoints;
    this.#now = now;
    if (this.keyScheme === "id") {
      const missing = Object.entries(config.loras).filter(([, l]) => l.id === undefined);
      if (missing.length > 0)
        throw new ConfigError(
          missing.map(
            ([name]) =>
              `tokenizer.loras.${name}.id: required: vLLM keys LoRA blocks by the adapter's int id ` +
              `(tokenizer.loraKey ${config.loraKey === "auto" ? "auto with hashAlgo sha256_cbor_64bit" : "id"})`,
          ),
        );
    }
  }

  resolve(model: string): LoraResolution {
    // The model name is the client's: an own-property lookup, so "constructor" is not a configured LoRA.
    const configured = Object.hasOwn(this.#loras, model) ? this.#loras[model] : undefined;
    if (configured !== undefined) {
      return {
        adapter: model,
        tokenizerModel: configured.baseModel ?? "",
        hashKey: this.keyScheme === "id" ? (configured.id ?? null) : model,
        hashable: true,
      };
    }
    if (this.#models.has(model))
      return { adapter: null, tokenizerModel: model, hashKey: null, hashable: true };
    if (this.#reported(model)) {
      // The pods serve it as an adapter; by name kvpick can hash it, by id it cannot guess the number.
      const byName = this.keyScheme === "name";
      return { adapter: model, tokenizerModel: "", hashKey: byName ? model : null, hashable: byName };
    }
    // Not a configured adapter nor a configured model: the base model as far as hashing goes, and GIE's
    // reading for affinity when LoRA is configured at all (otherwise unknown).
    const known = Object.keys(this.#loras).length > 0;
    return { adapter: known ? null : undefined, tokenizerModel: model, hashKey: null, hashable: true };
  }

  /** Whether any pod lists `model` among its running or waiting adapters (memoised for a while). */
  #reported(model: string): boolean {
    // No vLLM adapter name is this long; a client's 1 MB name must not become a memo key (label-bounds).
    if (this.#endpoints === null || model.length > MAX_FIELD_CHARS) return false;
    const now = this.#now();
    const memo = this.#seen.get(model);
    if (memo !== undefined && now - memo.at < DISCOVERY_TTL_MS) return memo.adapter;
    let adapter = false;
    for (const e of this.#endpoints.candidates()) {
      const lora = e.metrics?.lora;
      if (lora != null && (lora.running.includes(model) || lora.waiting.includes(model))) {
        adapter = true;
        break;
      }
    }
    if (this.#seen.size >= MAX_REMEMBERED) this.#seen.clear();
    this.#seen.set(model, { adapter, at: now });
    return adapter;
  }
}
