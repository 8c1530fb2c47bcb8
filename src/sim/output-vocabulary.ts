// Synthetic generated text. The simulator has no model; it "generates" a fixed cycle of common words, each
// one real token of the served model's tokenizer, so the generated token ids that complete KV blocks (and
// appear in BlockStored events) are the ids vLLM would see for that text.
import type { TokenizationService } from "../tokenization/tokenization-service.js";

const WORDS =
  " the model is simulated and every word here is one token of the real tokenizer so the cache sees exact ids for this text".split(
    /(?= )/,
  );

export interface OutputVocabulary {
  /** Token ids, cycled: generated token i is ids[i % ids.length]. */
  ids: Uint32Array;
  /** Text of each id. */
  texts: string[];
}

export async function loadOutputVocabulary(
  tokenizer: TokenizationService,
  model: string,
): Promise<OutputVocabulary> {
  const ids: number[] = [];
  const texts: string[] = [];
  for (const word of WORDS) {
    const { tokenIds } = await tokenizer.tokenize(model, "/v1/completions", { prompt: word });
    if (tokenIds.length !== 1) continue;
    ids.push(tokenIds[0]!);
    texts.push(word);
  }
  if (ids.length === 0) throw new Error(`no single-token words for model ${model}`);
  return { ids: Uint32Array.from(ids), texts };
}

/** The token ids fed for a request: the prompt, then generated tokens 0 .. maxTokens − 2. */
export function fedTokens(prompt: Uint32Array, maxTokens: number, vocab: OutputVocabulary): Uint32Array {
  const out = new Uint32Array(prompt.length + maxTokens - 1);
  out.set(prompt);
  for (let i = 0; i < maxTokens - 1; i++) out[prompt.length + i] = vocab.ids[i % vocab.ids.length]!;
  return out;
}

/** The text of generated token `i`. */
export function outputText(vocab: OutputVocabulary, i: number): string {
  return vocab.texts[i % vocab.texts.length]!;
}
