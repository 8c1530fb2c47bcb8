// Reads the `usage` block that vLLM puts in the last SSE event (streaming) or in the JSON body
// (non-streaming), without holding more than one partial SSE line and, for JSON bodies, a bounded buffer.

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  /** `prompt_tokens_details.cached_tokens`: what vLLM actually reused (null if the server omits it). */
  cachedTokens: number | null;
}

/** Non-streaming bodies larger than this are not parsed for usage (they are still passed through). */
const MAX_JSON_BYTES = 4 * 1024 * 1024;

export class UsageReader {
  #sse: boolean | null = null;
  #partial = "";
  #json: Buffer[] = [];
  #jsonBytes = 0;
  #usage: Usage | null = null;
  readonly #decoder = new TextDecoder();

  /** `content-type` of the response, when known; otherwise the first bytes decide. */
  setContentType(contentType: string | undefined): void {
    if (contentType !== undefined) this.#sse = contentType.includes("text/event-stream");
  }

  push(chunk: Uint8Array, endOfStream: boolean): void {
    if (this.#sse === null)
      this.#sse = chunk.length > 0 && !/^\s*[{[]/.test(Buffer.from(chunk.subarray(0, 16)).toString());
    if (this.#sse) this.#pushSse(chunk, endOfStream);
    else this.#pushJson(chunk, endOfStream);
  }

  get usage(): Usage | null {
    return this.#usage;
  }

  #pushSse(chunk: Uint8Array, end: boolean): void {
    const text = this.#partial + this.#decoder.decode(chunk, { stream: !end });
    const lines = text.split("\n");
    this.#partial = end ? "" : lines.pop()!;
    for (const line of lines) {
      // Only the final chunk carries usage; skip cheaply unless the line mentions it.
      if (!line.startsWith("data:") || !line.includes('"usage"')) continue;
      const payload = line.slice(5).trim();
      if (payload === "[DONE]") continue;
      this.#take(payload);
    }
  }

  #pushJson(chunk: Uint8Array, end: boolean): void {
    if (this.#jsonBytes <= MAX_JSON_BYTES) {
      this.#json.push(Buffer.from(chunk));
      this.#jsonBytes += chunk.length;
    }
    if (end && this.#jsonBytes <= MAX_JSON_BYTES) this.#take(Buffer.concat(this.#json).toString("utf8"));
    if (end) this.#json = [];
  }

  #take(json: string): void {
    let obj: unknown;
    try {
      obj = JSON.parse(json);
    } catch {
      return; // a backend's invalid JSON is passed through untouched; usage stays unknown
    }
    const u = (obj as { usage?: Record<string, unknown> } | null)?.usage;
    if (typeof u !== "object" || u === null) return;
    const details = u.prompt_tokens_details as Record<string, unknown> | null | undefined;
    this.#usage = {
      promptTokens: typeof u.prompt_tokens === "number" ? u.prompt_tokens : 0,
      completionTokens: typeof u.completion_tokens === "number" ? u.completion_tokens : 0,
      cachedTokens: typeof details?.cached_tokens === "number" ? details.cached_tokens : null,
    };
  }
}
