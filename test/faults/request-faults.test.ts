// Bad and hostile input on the ext_proc side, against a real `kvpick serve` process: invalid, oversized,
// deeply nested and huge JSON, invalid UTF-8, thousands of concurrent streams and thousands abandoned at
// every stage. Every request must get a pick or the documented error, the process must stay up, in-flight
// accounting must return to zero and memory must stay bounded.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EnvoyClient, type EnvoyRequest, type EnvoyResult } from "../support/envoy-client.js";
import { FakeVllmPod } from "../support/fake-vllm-pod.js";
import { until } from "../support/until.js";
import { sumSamples } from "../support/fault-stack.js";
import { type ServeChild, spawnServe } from "../support/serve-child.js";

const MAX_BODY = 8 * 1024 * 1024;

const chat = (content: unknown, extra: Record<string, unknown> = {}) =>
  Buffer.from(JSON.stringify({ model: "Qwen3-32B", messages: [{ role: "user", content }], ...extra }));

function rss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]) * 1024;
}

describe("hostile requests", () => {
  const pods: FakeVllmPod[] = [];
  let serve: ServeChild;
  let client: EnvoyClient;
  const metrics = async () => (await fetch(`http://127.0.0.1:${serve.metricsPort}/metrics`)).text();

  beforeAll(async () => {
    for (let i = 0; i < 3; i++) pods.push(await new FakeVllmPod(`127.0.0.${61 + i}`).start());
    serve = await spawnServe([
      `--endpoints=${pods.map((p) => p.address).join(",")}`,
      `--max-body-bytes=${MAX_BODY}`,
      "--log-level=error",
    ]);
    client = new EnvoyClient(`127.0.0.1:${serve.grpcPort}`);
    await client.waitForReady(20_000);
    await until(() => pods.every((p) => p.scrapes > 0), "first scrapes", 20_000);
  });

  afterAll(async () => {
    client?.close();
    await serve?.stop();
    await Promise.all(pods.map((p) => p.close()));
  });

  const alive = () => serve.proc.exitCode === null && serve.proc.signalCode === null;
  const routed = (r: EnvoyResult) => r.immediate === null && r.destination !== null;
  const send = (body: Buffer | string, extra: Partial<EnvoyRequest> = {}) =>
    client.process({ body, timeoutMs: 30_000, ...extra });

  /** A pick, or the documented client error with an OpenAI-style JSON body. */
  function pickOrClientError(r: EnvoyResult, statuses: number[]) {
    expect(r.violations).toEqual([]);
    if (routed(r)) return;
    expect(statuses).toContain(r.immediate?.status);
    const err = (r.immediate?.json as { error?: { message?: string; code?: unknown } } | null)?.error;
    expect(typeof err?.message).toBe("string");
  }

  it("answers malformed bodies with 400 and a clear message", async () => {
    const cases: Array<[string, Buffer | string]> = [
      ["not JSON", "{model: Qwen3-32B"],
      ["truncated JSON", '{"model":"Qwen3-32B","messages":[{"role":"user","content":"hi'],
      ["top-level array", "[1,2,3]"],
      ["top-level string", '"hello"'],
      ["no model", '{"messages":[{"role":"user","content":"hi"}]}'],
      ["model not a string", '{"model":42,"messages":[]}'],
      ["messages not an array", '{"model":"Qwen3-32B","messages":"hi"}'],
      [
        "invalid UTF-8",
        Buffer.concat([
          Buffer.from('{"model":"Qwen3-32B","messages":[{"role":"user","content":"'),
          Buffer.from([0xff, 0xfe, 0xc3]),
          Buffer.from('"}]}'),
        ]),
      ],
      [
        "overlong UTF-8 encoding",
        Buffer.concat([
          Buffer.from('{"model":"Qwen3-32B","x":"'),
          Buffer.from([0xc0, 0xaf]),
          Buffer.from('"}'),
        ]),
      ],
      ["a million unclosed brackets", `{"model":"Qwen3-32B","messages":${"[".repeat(1_000_000)}`],
      ["NUL bytes", Buffer.from('{"model":"Qwen3-32B",\u0000"messages":[]}')],
      ["completion without prompt", '{"model":"Qwen3-32B"}'],
    ];
    for (const [what, body] of cases) {
      const path = what === "completion without prompt" ? "/v1/completions" : "/v1/chat/completions";
      const r = await send(body, { path });
      expect(r.immediate?.status, what).toBe(400);
      const err = (r.immediate?.json as { error: { message: string; type: string } } | undefined)?.error;
      expect(err?.message.length, what).toBeGreaterThan(0);
      expect(err?.type, what).toBe("invalid_request_error");
    }
    expect(alive()).toBe(true);
  });

  it("routes or rejects strange but well-formed bodies without falling over", async () => {
    const deep = (n: number) => `${"[".repeat(n)}"x"${"]".repeat(n)}`;
    const cases: Array<[string, Buffer | string, string?]> = [
      [
        "deeply nested content (100k)",
        `{"model":"Qwen3-32B","messages":[{"role":"user","content":${deep(100_000)}}]}`,
      ],
      [
        "deeply nested unknown field",
        `{"model":"Qwen3-32B","messages":[{"role":"user","content":"hi"}],"x":${deep(200_000)}}`,
      ],
      ["content is a number", chat(12345)],
      [
        "content parts of unknown type",
        chat([
          { type: "image_url", image_url: { url: "data:," } },
          { type: "text", text: "hi" },
        ]),
      ],
      ["role missing", '{"model":"Qwen3-32B","messages":[{"content":"hi"}]}'],
      ["message is null", '{"model":"Qwen3-32B","messages":[null, 3, "x"]}'],
      ["lone surrogates", '{"model":"Qwen3-32B","messages":[{"role":"user","content":"\\ud800 \\udfff"}]}'],
      [
        "100k messages",
        JSON.stringify({
          model: "Qwen3-32B",
          messages: Array.from({ length: 100_000 }, (_, i) => ({
            role: i % 2 ? "assistant" : "user",
            content: `m${i}`,
          })),
        }),
      ],
      ["huge number", '{"model":"Qwen3-32B","messages":[{"role":"user","content":"hi"}],"max_tokens":1e400}'],
      ["token ids out of range", '{"model":"Qwen3-32B","prompt":[-1, 1e15, 2.5, 7]}', "/v1/completions"],
      ["prompt of nested token arrays", '{"model":"Qwen3-32B","prompt":[[1,2,3],[4,5]]}', "/v1/completions"],
      ["prompt is an object", '{"model":"Qwen3-32B","prompt":{"a":1}}', "/v1/completions"],
      ["unknown model", chat("hi", { model: "no-such-model" })],
      ["cache_salt not a string", chat("hi", { cache_salt: 7 })],
      ["tools not an array", chat("hi", { tools: "all of them" })],
    ];
    for (const [what, body, path] of cases) {
      const r = await send(body, path === undefined ? {} : { path });
      if (process.env.KVPICK_FAULTS_VERBOSE) console.log(what, r.immediate?.status ?? r.destination);
      pickOrClientError(r, [400]);
      expect(alive(), what).toBe(true);
    }
  });

  it("routes a huge valid prompt without blocking other requests, and answers 413 past the limit", async () => {
    // ~7 MB of text: about 1.7 M tokens, far more than any model's context; still a pick, not a hang.
    const huge = chat("All work and no play makes Jack a dull boy. ".repeat(160_000));
    expect(huge.length).toBeLessThan(MAX_BODY);
    const big = send(huge, { timeoutMs: 60_000 });
    // While it is being handled, small requests keep being answered.
    for (let i = 0; i < 5; i++) expect(routed(await send(chat(`small ${i}`)))).toBe(true);
    const r = await big;
    pickOrClientError(r, [400, 413]);
    const tooBig = await send(Buffer.alloc(MAX_BODY + 1, 0x20));
    expect(tooBig.immediate?.status).toBe(413);
    expect(alive()).toBe(true);
  });

  it("serves thousands of concurrent streams and cleans up thousands abandoned at every stage", async () => {
    const body = chat("Tell me about the refund policy for a damaged parcel.");
    await send(body); // warm the tokenizer caches
    const rssBefore = rss(serve.proc.pid!);

    const N = 2000;
    const results = await Promise.all(Array.from({ length: N }, () => send(body)));
    expect(results.filter(routed)).toHaveLength(N);

    const stages: Array<NonNullable<EnvoyRequest["abortAt"]>> = [
      "after-headers",
      "after-body-sent",
      "after-body",
      "after-response-headers",
    ];
    const abandoned = await Promise.allSettled(
      Array.from({ length: N }, (_, i) =>
        client.process({
          body,
          abortAt: stages[i % stages.length]!,
          response: { headers: { "content-type": "application/json" }, chunks: ['{"usage":'] },
          timeoutMs: 30_000,
        }),
      ),
    );
    expect(abandoned.every((s) => s.status === "fulfilled")).toBe(true);
    // Abandoned streams must release kvpick's in-flight accounting.
    const deadline = Date.now() + 20_000;
    let inflight = Number.NaN;
    while (Date.now() < deadline) {
      inflight = sumSamples(await metrics(), "epp_inflight_requests");
      if (inflight === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(inflight).toBe(0);
    expect(routed(await send(body))).toBe(true);
    expect(alive()).toBe(true);
    expect(rss(serve.proc.pid!) - rssBefore).toBeLessThan(256 * 1024 * 1024);
  });
});
