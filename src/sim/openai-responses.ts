// OpenAI response bodies shaped as vLLM v0.10 writes them (serving_chat.py / serving_completion.py):
// streaming chunks, the final usage chunk (only with stream_options.include_usage, as vLLM), full
// responses, and vLLM's error body. Usage always carries prompt_tokens_details.cached_tokens (vLLM with
// --enable-prompt-tokens-details).

export type ApiKind = "chat" | "completion";

export interface Usage {
  prompt_tokens: number;
  total_tokens: number;
  completion_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

export function usage(prompt: number, completion: number, cached: number): Usage {
  return {
    prompt_tokens: prompt,
    total_tokens: prompt + completion,
    completion_tokens: completion,
    prompt_tokens_details: { cached_tokens: cached },
  };
}

export interface ResponseIds {
  id: string;
  created: number;
  model: string;
}

export function streamChunk(
  kind: ApiKind,
  ids: ResponseIds,
  text: string,
  first: boolean,
  finishReason: string | null,
): string {
  const choice =
    kind === "chat"
      ? {
          index: 0,
          delta: first ? { role: "assistant", content: text } : { content: text },
          logprobs: null,
          finish_reason: finishReason,
          ...(finishReason === null ? {} : { stop_reason: null }),
        }
      : { index: 0, text, logprobs: null, finish_reason: finishReason, stop_reason: null };
  const object = kind === "chat" ? "chat.completion.chunk" : "text_completion";
  return `data: ${JSON.stringify({ id: ids.id, object, created: ids.created, model: ids.model, choices: [choice] })}\n\n`;
}

export function usageChunk(kind: ApiKind, ids: ResponseIds, u: Usage): string {
  const object = kind === "chat" ? "chat.completion.chunk" : "text_completion";
  return `data: ${JSON.stringify({ id: ids.id, object, created: ids.created, model: ids.model, choices: [], usage: u })}\n\n`;
}

export const DONE = "data: [DONE]\n\n";

export function fullResponse(kind: ApiKind, ids: ResponseIds, text: string, u: Usage): object {
  if (kind === "chat") {
    return {
      id: ids.id,
      object: "chat.completion",
      created: ids.created,
      model: ids.model,
      choices: [
        {
          index: 0,
          message: { role: "assistant", reasoning_content: null, content: text, tool_calls: [] },
          logprobs: null,
          finish_reason: "length",
          stop_reason: null,
        },
      ],
      usage: u,
      prompt_logprobs: null,
    };
  }
  return {
    id: ids.id,
    object: "text_completion",
    created: ids.created,
    model: ids.model,
    choices: [
      { index: 0, text, logprobs: null, finish_reason: "length", stop_reason: null, prompt_logprobs: null },
    ],
    usage: u,
  };
}

/** vLLM's ErrorResponse. */
export function errorBody(status: number, message: string): string {
  const type = status === 400 ? "BadRequestError" : status === 404 ? "NotFoundError" : "InternalServerError";
  return JSON.stringify({ object: "error", message, type, param: null, code: status });
}
