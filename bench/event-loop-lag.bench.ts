// Event-loop lag under mixed heavy work (issue 16): warm ~8k-token chat requests at 300 req/s against a real
// `kvpick serve` child (8 pods), while it also gets one 1,000,000-block BlockStored batch, one cold
// 32k-token prompt and one 100,000-message conversation. Lag is read in the child by support/loop-probe.ts
// (a 1 ms monitorEventLoopDelay, reported as delay beyond the interval: prom-client's 10 ms one reads ~10 ms
// on an idle loop), with each loop turn > 5 ms split into the time the child's main thread ran and the time
// it waited for a core (the generator shares the 2 cores), so the child's own stalls show apart from load.
// The generator reports what the small requests saw. Target: p99 ≤ 5 ms. Each heavy item is also timed
// alone before the run (no load). Writes bench/results/event-loop-lag.json.
// Run: npx tsc -p tsconfig.json && node --expose-gc dist/bench/event-loop-lag.bench.js [--seconds 15]
//      [--cpu-prof DIR] (the child writes a V8 CPU profile there on exit: what each stall was running)
import { existsSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EnvoyClient, splitInto } from "../test/support/envoy-client.js";
import { FakeVllmPod } from "../test/support/fake-vllm-pod.js";
import { sumSamples } from "../test/support/fault-stack.js";
import { encodeBatch, KvEventPublisher } from "../test/support/kv-event-publisher.js";
import { spawnServe } from "../test/support/serve-child.js";
import type { ProbeWindow } from "./support/loop-probe.js";
import { startResult } from "./support/results.js";

const SECONDS = Number(process.argv[process.argv.indexOf("--seconds") + 1]) || 15;
const RATE = 300;
const cpuProfDir = process.argv.includes("--cpu-prof")
  ? process.argv[process.argv.indexOf("--cpu-prof") + 1]
  : null;
const result = startResult(
  "event-loop-lag",
  "Event-loop lag under heavy requests and events",
  "node dist/bench/event-loop-lag.bench.js",
);

const words = ["policy", "travel", "hotel", "budget", "approval", "economy", "manager", "receipt", "refund"];
const rules = (tag: string, n: number) =>
  Array.from({ length: n }, (_, s) => `Rule ${s} for ${tag}: ${words[(s * 7) % 9]} ${s % 13} applies.`).join(
    " ",
  );
const chat = (messages: unknown[]) => Buffer.from(JSON.stringify({ model: "Qwen3-32B", messages }));
const system = rules("customer 0", 500); // ~8k tokens, warm after the first request
const warm = (n: number) =>
  chat([
    { role: "system", content: system },
    { role: "user", content: `Question ${n % 50}?` },
  ]);
// Every heavy item is new to the child each time (cold caches, new blocks): `tag` keeps them apart.
const cold32k = (tag: string) => chat([{ role: "user", content: rules(`cold ${tag} ${Date.now()}`, 2_000) }]);
const huge = (tag: string) =>
  chat(
    Array.from({ length: 100_000 }, (_, i) => ({
      role: i % 2 ? "assistant" : "user",
      content: `turn ${i} ${tag}: ok`,
    })),
  );
const batch = (first: number) => ({
  type: "BlockStored" as const,
  hashes: Array.from(
    { length: 1_000_000 },
    (_, i) => (BigInt(first + i + 1) * 0x9e3779b97f4a7c15n) % 2n ** 64n,
  ),
  parent: null,
  blockSize: 64,
});

const pods = await Promise.all(
  Array.from({ length: 8 }, (_, i) => new FakeVllmPod(`127.0.0.${81 + i}`).start()),
);
const probeOut = join(tmpdir(), `kvpick-loop-probe-${process.pid}.json`);
const serve = await spawnServe([`--endpoints=${pods.map((p) => p.address).join(",")}`, "--log-level=warn"], {
  nodeArgs: [
    "--import",
    new URL("./support/loop-probe.js", import.meta.url).href,
    ...(cpuProfDir ? ["--cpu-prof", `--cpu-prof-dir=${cpuProfDir}`] : []),
  ],
  env: { KVPICK_LOOP_PROBE_OUT: probeOut },
});
/** Ends the probe's current window and returns it (the next one starts at once). */
const probeWindow = async (): Promise<ProbeWindow> => {
  rmSync(probeOut, { force: true });
  serve.proc.kill("SIGUSR2");
  for (let i = 0; i < 200 && !existsSync(probeOut); i++) await new Promise((r) => setTimeout(r, 10));
  return JSON.parse(readFileSync(probeOut, "utf8")) as ProbeWindow;
};
const client = new EnvoyClient(`127.0.0.1:${serve.grpcPort}`);
const pub = new KvEventPublisher({ topic: `kv@${pods[0]!.ip}@Qwen3-32B` });
pub.connect(`tcp://127.0.0.1:${serve.kvPort}`);
const metrics = async () => (await fetch(`http://127.0.0.1:${serve.metricsPort}/metrics`)).text();
const send = (body: Buffer) =>
  client.process({ chunks: splitInto(body, Math.ceil(body.length / 60_000)), timeoutMs: 120_000 });

/**
 * How often the batch's progress is read from the child's /metrics. Each read renders every series on the
 * child's main thread (~4 ms there on this machine): polled every 50 ms, as before 2026-12-02 14:30, the bench's
 * own reads were ~8 % of the child's loop during the batch and a share of its > 5 ms turns, which a
 * Prometheus scraping every 15 s never causes. The batch's end-to-end time is read to within this much.
 */
const POLL_MS = 250;
/** Entries the child's index took in so far (evicted ones included), from its /metrics. */
const indexed = async () => {
  const text = await metrics();
  return sumSamples(text, "epp_kv_index_entries") + sumSamples(text, "epp_kv_index_evictions_total");
};
/** Publishes a 1,000,000-block batch and resolves once the child has applied all of it. `encoded`: the
 * batch's payload built beforehand, so the generator's own encoding (1 M BigInts, ~10 MB of msgpack: about a
 * second of its loop) stays out of the measured window and out of the small requests' latencies. */
const storeBatch = async (first: number, encoded?: Uint8Array) => {
  const before = await indexed();
  await pub.publishEncoded(encoded ?? encodeBatch([batch(first)]));
  const deadline = performance.now() + 120_000;
  while ((await indexed()) < before + 1_000_000) {
    if (performance.now() > deadline) throw new Error("the 1,000,000-block batch was not applied in 120 s");
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
};
// Built before they are timed, like the loaded run's below: the timings are the child's, not the generator's.
const aloneBatch = encodeBatch([batch(0)]);
const aloneCold = cold32k("a");
const aloneHuge = huge("a");
const heavyItems: [string, () => Promise<unknown>][] = [
  ["1,000,000-block BlockStored batch (published → applied)", () => storeBatch(0, aloneBatch)],
  ["cold 32k-token prompt", () => send(aloneCold)],
  ["100,000-message conversation", () => send(aloneHuge)],
];
/** The longest turns of a window (by the child's own run time), as "late ms (ran, waited, gc)"; at most `top`. */
const fmtStalls = (w: ProbeWindow, top = 6) =>
  w.stalls.length === 0
    ? "none"
    : [...w.stalls]
        .sort((a, b) => (b.runMs ?? b.lateMs) - (a.runMs ?? a.lateMs))
        .slice(0, top)
        .map((s) => `${s.lateMs} (ran ${s.runMs ?? "?"}, waited ${s.waitMs ?? "?"}, gc ${s.gcMs})`)
        .join("; ") + (w.stalls.length > top ? ` … (${w.stalls.length} in all)` : "");
/**
 * The window's p99 as it would read had the child's main thread never waited for a core: every turn > 5 ms
 * counted at the time it ran (the probe keeps no other samples, but they are ≤ 5 ms already). "≤ 5 ms" when
 * fewer than 1 % of the samples remain above 5 ms. The generator and the child's own worker threads share the
 * 2 cores; a pod with its cores to itself would come close to this figure, not to the raw p99.
 */
const ownP99 = (w: ProbeWindow): string => {
  const ran = w.stalls
    .map((s) => s.runMs ?? s.lateMs)
    .filter((ms) => ms > 5)
    .sort((a, b) => b - a);
  const k = Math.ceil(w.lag.count / 100);
  return ran.length >= k
    ? `${ran[k - 1]} ms`
    : `≤ 5 ms (${ran.length} of ${w.lag.count} samples above 5 ms, ${((100 * ran.length) / w.lag.count).toFixed(2)} %)`;
};
/** Turns where the child's main thread itself ran > 5 ms (waiting for a core not counted). */
const ownStalls = (w: ProbeWindow) => w.stalls.filter((s) => (s.runMs ?? s.lateMs) > 5);

try {
  await client.waitForReady(120_000);
  for (let i = 0; i < 200; i++) await send(warm(i)); // JIT and caches warm
  await pub.publish([{ ...batch(10_000_000), hashes: batch(10_000_000).hashes.slice(0, 5_000) }]);

  // Each heavy item alone, no other load: its own end-to-end time and the child's stalls while it ran.
  const alone: (string | number)[][] = [];
  for (const [name, run] of heavyItems) {
    await new Promise((r) => setTimeout(r, 500));
    await probeWindow();
    const t0 = performance.now();
    await run();
    const ms = performance.now() - t0;
    const w = await probeWindow();
    const own = { ...w, stalls: ownStalls(w) };
    console.log(`alone: ${name} ${ms.toFixed(0)} ms; child's own turns > 5 ms: ${fmtStalls(own, 20)}`);
    alone.push([name, `${ms.toFixed(0)} ms`, `${w.lag.p99} / ${w.lag.max} ms`, fmtStalls(own, 5)]);
  }

  // The loaded run's heavy items, built before its window (new to the child all the same).
  const loadedBatch = encodeBatch([batch(2_000_000)]);
  const loadedCold = cold32k("b");
  const loadedHuge = huge("b");
  await metrics();
  await probeWindow(); // the measured window starts here
  const latencies: number[] = [];
  let failed = 0;
  const inflight: Promise<unknown>[] = [];
  const heavy: Record<string, number> = {};
  const timeHeavy = (name: string, at: number, run: () => Promise<unknown>) =>
    new Promise<void>((resolve) =>
      setTimeout(async () => {
        const t0 = performance.now();
        await run().catch(() => {});
        heavy[name] = performance.now() - t0;
        resolve();
      }, at),
    );
  const heavyDone = Promise.all([
    timeHeavy(heavyItems[0]![0], 2_000, () => storeBatch(2_000_000, loadedBatch)),
    timeHeavy(heavyItems[1]![0], 5_000, () => send(loadedCold)),
    timeHeavy(heavyItems[2]![0], 8_000, () => send(loadedHuge)),
  ]);
  const started = performance.now();
  for (let i = 0; performance.now() - started < SECONDS * 1000; i++) {
    const due = started + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const t0 = performance.now();
    inflight.push(
      send(warm(i)).then((r) => {
        if (r.immediate === null && r.destination !== null) latencies.push(performance.now() - t0);
        else failed++;
      }),
    );
  }
  await Promise.all(inflight);
  await heavyDone;
  const w = await probeWindow();
  const text = await metrics();
  const promP99 = sumSamples(text, "nodejs_eventloop_lag_p99_seconds") * 1e3;
  const promP50 = sumSamples(text, "nodejs_eventloop_lag_p50_seconds") * 1e3;
  latencies.sort((a, b) => a - b);
  const q = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? Number.NaN;
  const achieved = latencies.length / SECONDS;
  const own = ownStalls(w);
  const waited = w.stalls.length - own.length;
  console.log(
    `lag beyond 1 ms: p50 ${w.lag.p50} ms, p90 ${w.lag.p90}, p99 ${w.lag.p99} ms, max ${w.lag.max} ms`,
  );
  console.log(
    `prom-client (10 ms timer, interval included): p50 ${promP50.toFixed(1)}, p99 ${promP99.toFixed(1)} ms`,
  );
  console.log(`gc: ${JSON.stringify(w.gc)}`);
  console.log(`child's own stalls > 5 ms (${own.length}): ${fmtStalls({ ...w, stalls: own }, 40)}`);
  console.log(`turns > 5 ms mostly waiting for a core: ${waited}`);
  console.log(heavy);
  result.tables.push({
    caption: `kvpick serve, 8 pods, warm ~8k-token chats offered at ${RATE} req/s for ${SECONDS} s (${achieved.toFixed(0)} req/s answered, ${failed} failed), plus the three heavy items below; lag from the child's 1 ms probe (support/loop-probe.ts), as delay beyond the interval.`,
    columns: ["measure", "value"],
    rows: [
      ["event-loop lag p50 / p90", `${w.lag.p50} / ${w.lag.p90} ms`],
      ["event-loop lag p99 (target ≤ 5 ms)", `${w.lag.p99} ms`],
      ["event-loop lag max", `${w.lag.max} ms`],
      [
        "prom-client nodejs_eventloop_lag p50 / p99 (10 ms timer, interval included)",
        `${promP50.toFixed(1)} / ${promP99.toFixed(1)} ms`,
      ],
      ["loop turns > 5 ms: the child's own (ran > 5 ms) / waiting for a core", `${own.length} / ${waited}`],
      [
        "event-loop lag p99 with the waits for a core taken out (each turn > 5 ms counted at the time it ran)",
        ownP99(w),
      ],
      ["the child's longest own turns, ms (ran, waited, gc)", fmtStalls({ ...w, stalls: own })],
      ["GC pauses: count / total / longest", `${w.gc.count} / ${w.gc.totalMs} / ${w.gc.maxMs} ms`],
      [
        "small-request latency p50 / p99 / max (generator)",
        `${q(0.5).toFixed(1)} / ${q(0.99).toFixed(1)} / ${q(1).toFixed(1)} ms`,
      ],
      ...Object.entries(heavy).map(([k, v]) => [`${k}, under load`, `${v.toFixed(0)} ms`]),
    ],
  });
  result.tables.push({
    caption:
      "Each heavy item alone (before the loaded run, no other requests): end to end, and the child's loop meanwhile.",
    columns: [
      "item",
      "end to end",
      "lag p99 / max",
      "the child's longest own turns > 5 ms, ms (ran, waited, gc)",
    ],
    rows: alone,
  });
  result.notes.push(
    "The generator shares the 2 cores with kvpick (and, on a shared machine, other work): turns where the child mostly waited for a core are counted apart from its own stalls (run time from /proc/thread-self/schedstat).",
  );
  console.log(`wrote ${result.write()}`);
} finally {
  client.close();
  pub.close();
  await serve.stop();
  await Promise.all(pods.map((p) => p.close()));
}
