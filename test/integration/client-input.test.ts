// Client input through the real ext_proc path (createApp on real sockets, an Envoy-like gRPC client):
// names a client chooses are never looked up on a plain object (issue 13 item 4), and a request the client
// or Envoy abandons before kvpick has decided teaches kvpick nothing (issue 13, "cancelled request").
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/app.js";
import { parseConfig } from "../../src/config/load.js";
import { createLogger } from "../../src/observability/logger.js";
import type { PromptTokenizer } from "../../src/routing/director.js";
import { sumSamples } from "../support/fault-stack.js";
import { EnvoyClient } from "../support/envoy-client.js";
import { FakeVllmPod } from "../support/fake-vllm-pod.js";
import { until } from "../support/until.js";
import { KvEventPublisher } from "../support/kv-event-publisher.js";

const chat = (content: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model: "Qwen3-32B", messages: [{ role: "user", content }], ...extra });

/** A tokenizer stand-in: while closed, every tokenization waits (the real one runs once it opens). */
class TokenizerGate {
  waiting = 0;
  #closed = false;
  #release: (() => void)[] = [];

  close(): void {
    this.#closed = true;
  }

  open(): void {
    this.#closed = false;
    for (const r of this.#release.splice(0)) r();
  }

  wrap(real: PromptTokenizer): PromptTokenizer {
    return {
      tokenize: async (model, endpoint, body, ...rest) => {
        if (this.#closed) {
          this.waiting++;
          await new Promise<void>((r) => this.#release.push(r));
          this.waiting--;
        }
        return real.tokenize(model, endpoint, body, ...rest);
      },
      ...(real.dirFor === undefined ? {} : { dirFor: (m: string) => real.dirFor!(m) }),
    };
  }
}

describe("client input on the ext_proc path", () => {
  const gate = new TokenizerGate();
  const pods: FakeVllmPod[] = [];
  let publisher: KvEventPublisher;
  let app: App;
  let client: EnvoyClient;
  let metricsUrl: string;

  beforeAll(async () => {
    for (const ip of ["127.0.0.51", "127.0.0.52"]) pods.push(await new FakeVllmPod(ip).start());
    const config = parseConfig({
      tokenizer: { hashSeed: "42" },
      kvEvents: { endpoint: "tcp://127.0.0.1:*" },
      server: { grpcPort: 0, grpcHealthPort: 0, metricsPort: 0, secureServing: false },
      pool: { endpoints: pods.map((p) => p.address) },
    });
    app = createApp({
      config,
      logger: createLogger({ level: "silent" }),
      host: "127.0.0.1",
      wrapTokenizer: (real) => gate.wrap(real),
    });
    const ports = await app.start();
    metricsUrl = `http://127.0.0.1:${ports.metricsPort}`;
    client = new EnvoyClient(`127.0.0.1:${ports.grpcPort}`, { tls: false });
    await client.waitForReady();
    await until(() => app.endpoints.candidates().every((e) => e.metricsState === "fresh"), "first scrapes");
    // The first pod publishes (only AllBlocksCleared): event-driven, so routing there records speculative
    // entries; the second never publishes, so routing there records estimated keys.
    publisher = new KvEventPublisher({ topic: `kv@${pods[0]!.ip}@Qwen3-32B` });
    publisher.connect(ports.kvEventsEndpoint!);
    await publisher.publishUntil(() => app.kvEvents.ingest.published(pods[0]!.ip));
  });

  afterAll(async () => {
    publisher?.close();
    client?.close();
    await app?.stop();
    await Promise.all(pods.map((p) => p.close()));
  });

  const metricsText = async () => (await fetch(`${metricsUrl}/metrics`)).text();

  it("records no speculative entry, estimated key, pick or dispatch credit for a request cancelled while routing", async () => {
    gate.close();
    const stop = new AbortController();
    const pending = Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        client.process({
          path: "/v1/chat/completions",
          body: chat(`Paragraph ${i} of a shared document, and a question about it.`),
          signal: stop.signal,
        }),
      ),
    );
    // Every one of them is being routed (parsed, now held in tokenization by the stand-in).
    await until(() => gate.waiting === 6, "requests held in tokenization");
    stop.abort();
    const cancelled = await pending;
    expect(cancelled.every((r) => r.destination === null)).toBe(true);
    // Released only once kvpick has seen every cancel (their streams closed): routing then goes on.
    const streams = async () => sumSamples(await metricsText(), "epp_extproc_streams_active");
    const deadline = Date.now() + 10_000;
    while ((await streams()) > 0) {
      if (Date.now() > deadline) throw new Error("cancels never reached kvpick");
      await new Promise((r) => setTimeout(r, 10));
    }
    gate.open();
    // Let routing of the abandoned requests finish, then look.
    const ok = await client.process({
      path: "/v1/chat/completions",
      body: chat("warm-up after the cancels"),
    });
    expect(ok.destination).not.toBeNull();
    await new Promise((r) => setTimeout(r, 200));
    const text = await metricsText();
    // Only the completed request was picked, and only it left state behind.
    expect(sumSamples(text, "epp_endpoint_picks_total")).toBe(1);
    expect(sumSamples(text, "inference_objective_request_total")).toBe(1);
    const speculative = sumSamples(text, "epp_speculative_entries_added_total");
    const estimated = sumSamples(text, "epp_estimated_prefix_entries");
    // The completed request is short: at most a block or two of either kind.
    expect(speculative + estimated).toBeLessThanOrEqual(4);
    expect(sumSamples(text, "epp_endpoint_pending_prefill_tokens")).toBeLessThan(200);
  });

  it("treats chat_template names that are Object.prototype members as literal templates, as vLLM does", async () => {
    for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf"]) {
      const r = await client.process({
        path: "/v1/chat/completions",
        body: chat("hello", { chat_template: name }),
      });
      expect(r.immediate?.json ?? null, name).toBeNull();
      expect(
        pods.map((p) => p.address),
        name,
      ).toContain(r.destination);
    }
  });

  it("routes models named like Object.prototype members, labelled as other", async () => {
    for (const model of ["constructor", "__proto__", "toString"]) {
      const r = await client.process({
        path: "/v1/chat/completions",
        body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
      });
      expect(r.immediate?.json ?? null, model).toBeNull();
      expect(
        pods.map((p) => p.address),
        model,
      ).toContain(r.destination);
    }
    const text = await metricsText();
    expect(text).not.toMatch(/model_name="(constructor|__proto__|toString)"/);
    expect(
      sumSamples(text, "inference_objective_request_total", { model_name: "other" }),
    ).toBeGreaterThanOrEqual(3);
    // The pool's own model (named by the pods' KV-event topic) keeps its label.
    expect(text).toMatch(/inference_objective_request_total\{model_name="Qwen3-32B"/);
  });
});
