// Reliability faults of issue 13 against a real `kvpick serve` process fed by simulated vLLM pods: a pod
// that published KV events but holds nothing is never scored by the estimated fallback (item 1).
// Item 2: kvpick SIGKILLed while a pod's replay ring holds 2,000+ batches, the replay's tail dropped: the pod
// is degraded, the replay resumes, the pod heals.
// Item 6: thirty requests with distinct 1 MB model names leave /metrics, RSS and the logs bounded.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatBody, FaultStack, note, sumSamples } from "../support/fault-stack.js";

const customers = (tag: string, n = 6) => Array.from({ length: n }, (_, i) => `${tag}-customer-${i}`);

/** One chat request through the Envoy stand-in, restricted to `ips` by the conformance filter's header. */
async function askVia(stack: FaultStack, ips: readonly string[], customer: string, question: string) {
  const r = await fetch(`http://127.0.0.1:${stack.front.port}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "test-epp-endpoint-selection": ips.join(",") },
    body: JSON.stringify(chatBody(customer, question)),
    signal: AbortSignal.timeout(20_000),
  });
  const text = await r.text();
  const usage =
    r.status === 200
      ? (
          JSON.parse(text) as {
            usage: { prompt_tokens: number; prompt_tokens_details?: { cached_tokens?: number } };
          }
        ).usage
      : null;
  return { status: r.status, pod: r.headers.get("x-kvpick-destination"), usage };
}

/** POST /reset_prefix_cache on the pod, then waits until kvpick applied its AllBlocksCleared. */
async function resetCache(stack: FaultStack, pod: FaultStack["cluster"]["pods"][number]): Promise<void> {
  const before = await stack.metric("epp_kv_events_applied_total", { type: "AllBlocksCleared" });
  const reset = await fetch(`http://${pod.address}/reset_prefix_cache`, { method: "POST" });
  expect(reset.status).toBe(200);
  const deadline = Date.now() + 10_000;
  while ((await stack.metric("epp_kv_events_applied_total", { type: "AllBlocksCleared" })) <= before) {
    if (Date.now() > deadline) throw new Error("AllBlocksCleared never applied");
    await new Promise((r) => setTimeout(r, 50));
  }
  await stack.settle();
}

describe("event-driven pods without blocks (issue 13 item 1)", () => {
  let stack: FaultStack;

  beforeAll(async () => {
    // The conformance filter lets the test decide which pods a request may go to; the default profile
    // (ttft-cost-scorer, estimated fallback on) scores whatever it keeps.
    const scheduling = {
      filters: [{ type: "fresh-metrics-filter" }, { type: "header-based-testing-filter" }],
    };
    stack = await FaultStack.start({
      pods: 2,
      serveArgs: [`--config-text=${JSON.stringify({ scheduling })}`],
    });
  });

  afterAll(async () => {
    await stack?.close();
  });

  it("never gives estimated credit to a pod that published AllBlocksCleared: requests stay on the holder", async () => {
    const [holder, cleared] = stack.cluster.pods as [
      (typeof stack.cluster.pods)[0],
      (typeof stack.cluster.pods)[0],
    ];
    const who = customers("cleared");
    let q = 0;
    // 1. The holder computes every customer's system prompt (its events tell kvpick).
    for (let round = 0; round < 2; round++)
      for (const c of who) expect((await askVia(stack, [holder.options.ip], c, `q${q++}`)).status).toBe(200);
    await stack.settle();
    // 2. The other pod serves them too while its events are lost on the wire: kvpick has never heard from
    //    it, so what it routed there is recorded by the estimated fallback (as it should be).
    await fetch(`http://${cleared.address}/sim/faults`, {
      method: "POST",
      body: JSON.stringify({ dropEventFraction: 1 }),
    });
    for (const c of who) expect((await askVia(stack, [cleared.options.ip], c, `q${q++}`)).status).toBe(200);
    note("estimated entries after step 2", await stack.metric("epp_estimated_prefix_entries"));
    await fetch(`http://${cleared.address}/sim/faults`, {
      method: "POST",
      body: JSON.stringify({ dropEventFraction: 0 }),
    });
    // 3. Its cache is reset: AllBlocksCleared arrives (after a replay of what was lost). It publishes now and
    //    holds no block at all.
    const clearedBefore = await stack.metric("epp_kv_events_applied_total", { type: "AllBlocksCleared" });
    const reset = await fetch(`http://${cleared.address}/reset_prefix_cache`, { method: "POST" });
    expect(reset.status).toBe(200);
    const deadline = Date.now() + 10_000;
    while (
      (await stack.metric("epp_kv_events_applied_total", { type: "AllBlocksCleared" })) <= clearedBefore
    ) {
      if (Date.now() > deadline) throw new Error("AllBlocksCleared never applied");
      await new Promise((r) => setTimeout(r, 50));
    }
    await stack.settle();
    note("estimated entries after step 3", await stack.metric("epp_estimated_prefix_entries"));
    // 4. Either pod may serve: the holder has every prefix, the cleared pod none. Estimated credit for the
    //    cleared pod would pull requests to it (and its empty cache): it is listed first, so it also wins
    //    ties.
    const picks: string[] = [];
    let prompt = 0;
    let cached = 0;
    for (const c of who) {
      const r = await askVia(stack, [cleared.options.ip, holder.options.ip], c, `q${q++}`);
      expect(r.status).toBe(200);
      picks.push(r.pod ?? "");
      prompt += r.usage?.prompt_tokens ?? 0;
      cached += r.usage?.prompt_tokens_details?.cached_tokens ?? 0;
    }
    note("after AllBlocksCleared, picks", picks.join(" "), "hit rate", (cached / prompt).toFixed(3));
    expect(picks.filter((p) => p === cleared.address)).toEqual([]);
    expect(cached / prompt).toBeGreaterThan(0.7);
  });

  // Built to misroute under the old rule (event-driven = "holds a block now", PrefixLookup.hasPod): the
  // cleared pod is routed a long prompt while it holds nothing, so the estimated fallback records all of it;
  // it is then cleared again. For the same prompt the holder's exact credit is the system prompt alone, the
  // cleared pod's estimate the whole prompt: with equal load and queues, ttft-cost-scorer's cost
  // (prompt − cached tokens) is far lower for the cleared pod, which has nothing.
  it("a cleared pod never outbids the holder with an estimate of what it was routed while empty", async () => {
    const [holder, cleared] = stack.cluster.pods as [
      (typeof stack.cluster.pods)[0],
      (typeof stack.cluster.pods)[0],
    ];
    const who = "outbid-customer";
    const long = Array.from(
      { length: 120 },
      (_, i) => `Parcel ${i * 7919} was scanned at depot ${i % 13} on day ${i % 29}.`,
    ).join(" ");
    for (let i = 0; i < 2; i++)
      expect((await askVia(stack, [holder.options.ip], who, `short ${i}`)).status).toBe(200);
    await resetCache(stack, cleared);
    expect((await askVia(stack, [cleared.options.ip], who, long)).status).toBe(200);
    // Past the speculative entries' TTL (2 s): what is measured is the estimate, not the speculation.
    await new Promise((r) => setTimeout(r, 2_500));
    await resetCache(stack, cleared);
    const picks: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await askVia(stack, [cleared.options.ip, holder.options.ip], who, long);
      expect(r.status).toBe(200);
      picks.push(r.pod ?? "");
    }
    note("after a routed-while-empty prompt and a clear, picks", picks.join(" "));
    expect(picks).toEqual([holder.address, holder.address, holder.address]);
  });

  it("never gives estimated credit to a pod that only published other prefixes", async () => {
    const [holder, other] = stack.cluster.pods as [
      (typeof stack.cluster.pods)[0],
      (typeof stack.cluster.pods)[0],
    ];
    const who = customers("others", 4);
    let q = 1000;
    for (const c of who) expect((await askVia(stack, [holder.options.ip], c, `q${q++}`)).status).toBe(200);
    // The other pod stores (and publishes) prefixes of different customers only.
    for (const c of customers("unrelated", 2))
      expect((await askVia(stack, [other.options.ip], c, `q${q++}`)).status).toBe(200);
    await stack.settle();
    const picks: string[] = [];
    for (const c of who)
      picks.push((await askVia(stack, [other.options.ip, holder.options.ip], c, `q${q++}`)).pod ?? "");
    expect(picks.filter((p) => p === other.address)).toEqual([]);
  });
});

describe("client-chosen model names stay bounded (issue 13 item 6)", () => {
  let stack: FaultStack;

  beforeAll(async () => {
    stack = await stackWithLogs();
  });

  afterAll(async () => {
    await stack?.close();
  });

  it("30 requests with distinct 1 MB model names: /metrics and RSS stay small, served models keep their label, logs cut the names", async () => {
    // A served model first, so its label exists before the flood.
    // (Before the pods' KV events name it, a served model counts as "other" too.)
    expect((await stack.ask("served-customer")).status).toBe(200);
    await stack.settle();
    const textBefore = await stack.metricsText();
    const metricsBefore = Buffer.byteLength(textBefore);
    const other0 = sumSamples(textBefore, "inference_objective_request_total", { model_name: "other" });
    const rssBefore = stack.rssBytes();
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) {
      const model = `${String(i).padStart(2, "0")}-${"m".repeat(1024 * 1024)}`;
      statuses.push((await stack.ask("flood-customer", { model })).status);
    }
    // Routed (the simulator then answers for its own model) or refused as a client error: never a 5xx.
    expect(statuses.filter((s) => s === 0 || s >= 500)).toEqual([]);
    expect((await stack.ask("served-customer")).status).toBe(200);
    const text = await stack.metricsText();
    const metricsAfter = Buffer.byteLength(text);
    const rssAfter = stack.rssBytes();
    note("/metrics bytes", metricsBefore, "→", metricsAfter, "RSS MB", rssBefore >> 20, "→", rssAfter >> 20);
    expect(metricsAfter).toBeLessThan(2 * metricsBefore);
    // 30 MB of bodies pass through (buffered, parsed, forwarded): the heap grows, but not by names kept forever
    // (before the fix: /metrics 63 MB, RSS +400 MB, or out of memory here).
    expect(rssAfter - rssBefore).toBeLessThan(300 * 1024 * 1024);
    // The served model keeps its own label; every flood name shares "other" (counted once the response ends).
    let count = await stack.metricsText();
    const other = () =>
      sumSamples(count, "inference_objective_request_total", { model_name: "other" }) - other0;
    for (let t = 0; other() < 30; t++) {
      if (t > 100) break;
      await new Promise((r) => setTimeout(r, 50));
      count = await stack.metricsText();
    }
    expect(other()).toBe(30);
    expect(
      sumSamples(count, "inference_objective_request_total", { model_name: "Qwen3-32B" }),
    ).toBeGreaterThanOrEqual(1);
    // No log line carries a whole name: the longest line stays far below 1 MB.
    expect(stack.logs.length).toBeGreaterThan(0);
    const longest = Math.max(...stack.logs.map((l) => l.length));
    expect(longest).toBeLessThan(64 * 1024);
    expect(stack.logs.some((l) => l.includes("(1048579 chars)"))).toBe(true);
  });
});

function stackWithLogs(): Promise<FaultStack> {
  return FaultStack.start({ pods: 2, captureLogs: true, serveArgs: ["--log-level=info"] });
}

describe("a replay cut short after a restart (issue 13 item 2)", () => {
  let stack: FaultStack;

  beforeAll(async () => {
    stack = await FaultStack.start({ pods: 2, captureLogs: true, serveArgs: ["--log-level=info"] });
  });

  afterAll(async () => {
    await stack?.close();
  });

  it("SIGKILL with 2,000+ batches in a pod's ring and the replay's tail dropped: degraded, resumed, healed", async () => {
    const [pod] = stack.cluster.pods as [(typeof stack.cluster.pods)[0]];
    expect((await stack.ask("replay-customer")).status).toBe(200);
    await stack.settle();
    // 2,100 more batches from the pod's own publisher (they reach kvpick live and fill vLLM's replay ring).
    for (let i = 0; i < 2_100; i++) pod.publisher!.publish({ ts: 1_700_000_000 + i, events: [] });
    expect(pod.publisher!.buffered).toBeGreaterThan(2_000);
    // Its replay ROUTER now stops every reply after 700 batches, end marker included (what a ROUTER at
    // ZeroMQ's default send high-water mark does to a long replay).
    await fetch(`http://${pod.address}/sim/faults`, {
      method: "POST",
      body: JSON.stringify({ replayDropTailAfter: 700 }),
    });
    const starts = pod.publisher!.replayServer!.starts.length;
    const logsBefore = stack.logs.length;
    await stack.killAndRestart();
    // The restarted kvpick replays the pool's pods from 0 (pool join): the pod's reply is cut at 700.
    const seen = new Set<string>();
    const deadline = Date.now() + 40_000;
    for (;;) {
      const text = await stack.metricsText();
      if (sumSamples(text, "epp_kv_pod_accuracy", { state: "degraded" }) > 0) seen.add("degraded");
      const done =
        sumSamples(text, "epp_kv_replays_total", { result: "complete" }) >= 2 &&
        sumSamples(text, "epp_kv_pod_accuracy", { state: "degraded" }) === 0 &&
        seen.has("degraded");
      if (done) break;
      if (Date.now() > deadline) throw new Error(`never healed; seen ${[...seen].join(",")}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const text = await stack.metricsText();
    note(
      "replays",
      text
        .split("\n")
        .filter((l) => l.startsWith("epp_kv_replays_total"))
        .join(" | "),
    );
    expect(sumSamples(text, "epp_kv_replays_total", { result: "truncated" })).toBeGreaterThanOrEqual(2);
    expect(sumSamples(text, "epp_kv_pod_state_stale")).toBe(0);
    // Resumed right after the last replayed batch each time: 0, 700, 1400, …
    const asked = pod.publisher!.replayServer!.starts.slice(starts);
    expect(asked.slice(0, 3)).toEqual([0n, 700n, 1400n]);
    const lines = stack.logs.slice(logsBefore).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.filter((l) => l.reason === "replay-truncated" && l.level === "warn")).toHaveLength(1);
    expect(lines.some((l) => l.msg === "kv-event state exact again")).toBe(true);
    // Routing works on the replayed state.
    expect((await stack.ask("replay-customer")).status).toBe(200);
  });
});
