// One huge conversation against a real `kvpick serve` process: a 100,000-message chat request must not hold
// the event loop (issue 13 item 5: it held it 3–4.6 s when the template was rendered on the main thread).
// The child's own monitorEventLoopDelay histogram (prom-client's nodejs_eventloop_lag_*, reset by each
// scrape) measures the stall from inside; small requests sent meanwhile must keep being answered. Beyond
// tokenizer.maxChatMessages a conversation gets a clear 413.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EnvoyClient, type EnvoyResult, splitInto } from "../support/envoy-client.js";
import { FakeVllmPod } from "../support/fake-vllm-pod.js";
import { until } from "../support/until.js";
import { sumSamples } from "../support/fault-stack.js";
import { type ServeChild, spawnServe } from "../support/serve-child.js";

const MESSAGE_CAP = 150_000;

const conversation = (n: number, tag: string) =>
  Buffer.from(
    JSON.stringify({
      model: "Qwen3-32B",
      messages: Array.from({ length: n }, (_, i) => ({
        role: i % 2 === 0 ? "user" : "assistant",
        content: `${tag} turn ${i}: ok`,
      })),
    }),
  );

describe("a 100,000-message conversation", () => {
  const pods: FakeVllmPod[] = [];
  let serve: ServeChild;
  let client: EnvoyClient;
  const metrics = async () => (await fetch(`http://127.0.0.1:${serve.metricsPort}/metrics`)).text();
  const send = (body: Buffer) =>
    client.process({ chunks: splitInto(body, Math.ceil(body.length / 60_000)), timeoutMs: 120_000 });
  const routed = (r: EnvoyResult) => r.immediate === null && r.destination !== null;

  beforeAll(async () => {
    for (let i = 0; i < 2; i++) pods.push(await new FakeVllmPod(`127.0.0.${91 + i}`).start());
    serve = await spawnServe([
      `--endpoints=${pods.map((p) => p.address).join(",")}`,
      `--config-text={"tokenizer":{"maxChatMessages":${MESSAGE_CAP}}}`,
      "--log-level=error",
    ]);
    client = new EnvoyClient(`127.0.0.1:${serve.grpcPort}`);
    await client.waitForReady(90_000);
    await until(() => pods.every((p) => p.scrapes > 0), "first scrapes", 60_000);
    // Warm the JIT and the tokenizer worker with mid-size conversations (rendered on the worker too).
    for (let i = 0; i < 3; i++) expect(routed(await send(conversation(2_000, `warm${i}`)))).toBe(true);
  });

  afterAll(async () => {
    client?.close();
    await serve?.stop();
    await Promise.all(pods.map((p) => p.close()));
  });

  it("is routed while the event loop stays responsive and small requests keep being served", async () => {
    const big = conversation(100_000, "big");
    await metrics(); // resets the child's event-loop delay histogram
    let bigDone = false;
    const bigRequest = send(big).finally(() => {
      bigDone = true;
    });
    const small: number[] = [];
    let failures = 0;
    while (!bigDone) {
      const t0 = performance.now();
      const r = await send(conversation(2, `small${small.length}`));
      if (routed(r)) small.push(performance.now() - t0);
      else failures++;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const result = await bigRequest;
    const text = await metrics();
    const lagMaxMs = sumSamples(text, "nodejs_eventloop_lag_max_seconds") * 1e3;
    const lagP99Ms = sumSamples(text, "nodejs_eventloop_lag_p99_seconds") * 1e3;
    small.sort((a, b) => a - b);
    console.log(
      `100,000 messages (${big.length} bytes): child event-loop lag max ${lagMaxMs.toFixed(1)} ms, ` +
        `p99 ${lagP99Ms.toFixed(1)} ms; ${small.length} small requests served meanwhile, ` +
        `latency median ${small[small.length >> 1]?.toFixed(1)} ms, max ${small.at(-1)?.toFixed(1)} ms`,
    );
    expect(result.violations).toEqual([]);
    expect(routed(result)).toBe(true);
    expect(failures).toBe(0);
    expect(small.length).toBeGreaterThanOrEqual(10);
    // Rendering on the main thread held the loop 3.4 s of CPU (tens of seconds of wall time at load 20).
    // What is left on the main thread is the director's JSON.parse of the 4.9 MB body (~45 ms of CPU): at
    // the load of a shared 2-core VM (load average 20+) that alone measured ~600 ms of wall time, hence the
    // tolerant bound; the figure is printed above.
    expect(lagMaxMs).toBeLessThan(1500);
  });

  it("answers a conversation beyond tokenizer.maxChatMessages with 413", async () => {
    const r = await send(conversation(MESSAGE_CAP + 1, "over"));
    expect(r.violations).toEqual([]);
    expect(r.immediate?.status).toBe(413);
    const err = (r.immediate?.json as { error?: { message?: string } } | null)?.error;
    expect(err?.message).toMatch(/maxChatMessages/);
  });
});
