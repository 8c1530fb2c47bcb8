// Reliability faults of issue 13 against a real `kvpick serve` process fed by simulated vLLM pods: a pod
// that published KV events but holds nothing is never scored by the estimated fallback (item 1).
// TODO(#13): items 2 and 6 end to end (truncated replay → degraded → resumed; 1 MB model-name flood).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatBody, FaultStack, note } from "../support/fault-stack.js";

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
