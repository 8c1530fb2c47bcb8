// Faults of the processes around kvpick and of kvpick itself: a model pod killed mid-stream, pods whose
// /metrics is slow or failing, a pod turning NotReady in Kubernetes, and kvpick SIGKILLed with requests
// in flight and restarted. For each: every request gets an answer, kvpick stays up (or comes back), and the
// hit rate the pods report returns to its level before the fault.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FaultStack, note } from "../support/fault-stack.js";
import { until } from "../support/until.js";

const customers = (tag: string, n = 8) => Array.from({ length: n }, (_, i) => `${tag}-customer-${i}`);

const baseline = (stack: FaultStack, who: readonly string[]) => stack.baseline(who);

/** Waves until the hit rate is back within 5 points of `before`, at most `waves` of them. */
async function recovers(stack: FaultStack, who: readonly string[], before: number, waves = 6): Promise<void> {
  expect((await stack.recovery(who, before, waves)).hitRate).toBeGreaterThanOrEqual(before - 0.05);
}

/** kvpick's own view of an endpoint's load reading (`epp_endpoint_metrics_fresh`). */
async function fresh(stack: FaultStack, address: string): Promise<boolean> {
  return (await stack.metric("epp_endpoint_metrics_fresh", { endpoint: address })) === 1;
}

describe("pod and EPP faults (static pool)", () => {
  let stack: FaultStack;

  beforeAll(async () => {
    // scrapeTimeoutMs 300: a slow /metrics is given up on quickly (the default is 1 s, as GIE).
    stack = await FaultStack.start({
      pods: 3,
      serveArgs: ['--config-text={"endpoints":{"scrapeTimeoutMs":300}}'],
    });
  });

  afterAll(async () => {
    await stack?.close();
  });

  afterEach(async () => {
    for (const p of stack.cluster.pods) p.setFaults({ metricsDelayMs: 0, failMetrics: false });
  });

  it("routes around pods whose /metrics is slow or failing, and takes them back", async () => {
    const who = customers("scrape");
    const before = await baseline(stack, who);
    const [slow, failing] = stack.cluster.pods;
    slow!.setFaults({ metricsDelayMs: 2_000 });
    failing!.setFaults({ failMetrics: true });
    await until(
      async () => !(await fresh(stack, slow!.address)) && !(await fresh(stack, failing!.address)),
      "kvpick to notice the failing scrapes",
      15_000,
      50,
    );
    for (let i = 0; i < 2; i++) {
      const w = await stack.wave(who);
      expect(w.statuses.get(200)).toBe(who.length);
      // A pod whose load kvpick cannot read is treated as saturated: the healthy pod takes the traffic.
      expect(w.picks.every((p) => p === stack.cluster.pods[2]!.address)).toBe(true);
    }
    expect(stack.alive).toBe(true);
    slow!.setFaults({ metricsDelayMs: 0 });
    failing!.setFaults({ failMetrics: false });
    await until(
      async () => (await fresh(stack, slow!.address)) && (await fresh(stack, failing!.address)),
      "the scrapes to recover",
      15_000,
      50,
    );
    await recovers(stack, who, before);
  });

  it("survives a pod killed mid-stream and keeps answering on the others", async () => {
    const who = customers("kill");
    const before = await baseline(stack, who);
    // A long streaming answer, so the pod dies while it is being streamed.
    const res = await fetch(`http://127.0.0.1:${stack.front.port}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({
        model: "Qwen3-32B",
        stream: true,
        max_tokens: 20_000,
        messages: [{ role: "user", content: "Write a very long story." }],
      }),
    });
    expect(res.status).toBe(200);
    const victimAddress = res.headers.get("x-kvpick-destination")!;
    const victim = stack.cluster.pods.find((p) => p.address === victimAddress)!;
    const reader = res.body!.getReader();
    await reader.read(); // the first chunk is through: the stream is live
    await victim.close();
    let truncated = false;
    try {
      for (;;) {
        const { done } = await reader.read();
        if (done) break;
      }
    } catch {
      truncated = true; // the front resets the client's connection when the upstream dies
    }
    note("stream after the kill:", truncated ? "reset" : "ended");

    await until(
      async () => !(await fresh(stack, victimAddress)),
      "kvpick to notice the dead pod",
      15_000,
      50,
    );
    const survivors = stack.cluster.pods.filter((p) => p !== victim).map((p) => p.address);
    for (let i = 0; i < 2; i++) {
      const w = await stack.wave(who);
      expect(w.statuses.get(200)).toBe(who.length);
      expect(w.picks.every((p) => survivors.includes(p))).toBe(true);
    }
    expect(stack.alive).toBe(true);
    await recovers(stack, who, before);
  });

  it("comes back after SIGKILL with requests in flight and routes well again", async () => {
    const who = customers("epp-kill", 12);
    const before = await baseline(stack, who);
    // Requests in flight when kvpick dies: each gets an answer from the gateway (200 if kvpick had already
    // picked, else the gateway's error for a failed ext_proc call — Envoy's FailClose), none hangs.
    const inflight = stack.wave(who, 12);
    await new Promise((r) => setTimeout(r, 5));
    await stack.killAndRestart();
    const during = await inflight;
    note("statuses while killed", [...during.statuses]);
    expect(during.statuses.get(0) ?? 0).toBe(0);
    expect([...during.statuses.keys()].every((s) => s === 200 || s === 500)).toBe(true);
    expect(stack.alive).toBe(true);
    // The pods offer replay: the restarted kvpick asks each for its ring when it first hears from it, so the
    // index is back after one wave (without replay it takes several: each miss re-teaches one prefix).
    await recovers(stack, who, before, 2);
    expect(await stack.metric("epp_kv_replays_total", { result: "complete" })).toBeGreaterThan(0);
  });
});

describe("pod NotReady (Kubernetes pool)", () => {
  let stack: FaultStack;

  beforeAll(async () => {
    stack = await FaultStack.start({ pods: 3, kube: true });
  });

  afterAll(async () => {
    await stack?.close();
  });

  it("stops routing to a NotReady pod, forgets its cache, and routes well when it is back", async () => {
    const who = customers("notready");
    const before = await baseline(stack, who);
    const gone = stack.cluster.pods[0]!;
    const entriesOf = () => stack.metric("epp_endpoint_picks_total", { endpoint: gone.address });
    stack.setReady(0, false);
    await until(
      async () => (await stack.metric("inference_pool_ready_pods")) === 2,
      "kvpick to drop the NotReady pod",
      15_000,
      50,
    );
    const picksBefore = await entriesOf();
    for (let i = 0; i < 2; i++) {
      const w = await stack.wave(who);
      expect(w.statuses.get(200)).toBe(who.length);
      expect(w.picks).not.toContain(gone.address);
    }
    expect(await entriesOf()).toBe(picksBefore);
    stack.setReady(0, true);
    await until(
      async () => (await stack.metric("inference_pool_ready_pods")) === 3,
      "kvpick to take the pod back",
      15_000,
      50,
    );
    expect(stack.alive).toBe(true);
    await recovers(stack, who, before);
  });
});
