// The Director with its request memo (tokenizer.requestMemoBytes) on the bundled Qwen3 tokenizer and vLLM's
// hashing: a body seen again is routed with exactly the chain it would get hashed afresh, and only the same
// bytes, hashed the same way, ever hit.
import { afterAll, describe, expect, it } from "vitest";
import { configSchema } from "../config/schema.js";
import { LearntBlockSize } from "../kv-index/learnt-block-size.js";
import { RequestHasher } from "../kv-index/request-key-scheme.js";
import { createLogger } from "../observability/logger.js";
import { Metrics } from "../observability/metrics.js";
import { RouteMetrics, watchRequestMemo } from "../observability/route-metrics.js";
import { anEndpoint, recordingScheduler, staticSource } from "../scheduling/scheduling.fixture.js";
import { TokenizationService } from "../tokenization/tokenization-service.js";
import { type ChainHasher, Director } from "./director.js";
import { aRouteRequest } from "./route-request.fixture.js";

const logger = createLogger({ level: "silent" });
const tokenizer = new TokenizationService({ config: configSchema.parse({}).tokenizer, logger });
afterAll(() => tokenizer.stop());

const KEYS = { scheme: "sha256_cbor_64bit", hashSeed: "42", comparable: false } as const;

function aDirector(requestMemoBytes: number, hasher: ChainHasher) {
  const metrics = new Metrics();
  const pod = anEndpoint("10.0.0.1:8000");
  const scheduler = recordingScheduler(pod);
  const { asked } = scheduler;
  const director = new Director({
    tokenizer,
    hasher,
    scheduler,
    endpoints: staticSource([pod]),
    logger,
    recorder: new RouteMetrics(metrics),
    requestMemoBytes,
  });
  const memoCount = async (result: string) =>
    (await metrics.registry.getSingleMetric("epp_request_memo_lookups_total")!.get()).values.find(
      (v) => v.labels.result === result,
    )?.value ?? 0;
  return { director, asked, memoCount, metrics };
}

const system = Array.from({ length: 60 }, (_, i) => `Rule ${i}: book economy for trips under 6 hours.`).join(
  " ",
);
const chat = (user: string, extra: Record<string, unknown> = {}) =>
  Buffer.from(
    JSON.stringify({
      model: "Qwen3-32B",
      messages: [
        { role: "system", content: system },
        { role: "user", content: user },
      ],
      ...extra,
    }),
  );

describe("Director request memo", () => {
  it("routes a body seen again with exactly the chain hashing it afresh gives, and other bodies with theirs", async () => {
    const hasher = new RequestHasher(KEYS, new LearntBlockSize(16, logger));
    const memo = aDirector(1 << 24, hasher);
    const plain = aDirector(0, hasher);
    const a = chat("May I book a 4 star hotel for 3 nights?");
    // Same length as `a`, one character apart; then a salt (mixed into block 0) and a completion of the same bytes.
    const b = chat("May I book a 5 star hotel for 3 nights?");
    const salted = chat("May I book a 4 star hotel for 3 nights?", { cache_salt: "tenant-1" });
    const bodies = [a, a, a, b, a, b, b, salted, salted, salted, a];
    for (const [i, body] of bodies.entries()) {
      for (const d of [memo, plain]) {
        const out = await d.director.route({
          requestId: `r${i}`,
          method: "POST",
          path: "/v1/chat/completions",
          headers: new Map(),
          body: Buffer.from(body),
          subsetHint: null,
        });
        expect(out.kind).toBe("routed");
      }
      const [got, want] = [memo.asked[i]!, plain.asked[i]!];
      expect(want.blockHashes.length).toBeGreaterThan(10);
      expect(Buffer.from(got.blockHashes.buffer)).toEqual(Buffer.from(want.blockHashes.buffer));
      expect(got.promptTokens).toBe(want.promptTokens);
      expect(got.cacheSalt).toBe(want.cacheSalt);
      expect(JSON.stringify(got.promptValue?.())).toBe(JSON.stringify(want.promptValue?.()));
    }
    // Kept on the second sighting, hit from the third: a ×5 (3 hits), b ×3 (1), salted ×3 (1).
    expect(await memo.memoCount("hit")).toBe(5);
    expect(await memo.memoCount("miss")).toBe(6);
    expect(await plain.memoCount("hit")).toBe(0);
  });

  it("exports the memo's size at scrape time", async () => {
    const memo = aDirector(1 << 24, new RequestHasher(KEYS, new LearntBlockSize(16, logger)));
    watchRequestMemo(memo.metrics.registry, memo.director);
    const gauge = async (name: string) =>
      (await memo.metrics.registry.getSingleMetric(name)!.get()).values[0]?.value ?? -1;
    expect(await gauge("epp_request_memo_entries")).toBe(0);
    const body = chat("Which hotels are approved in Porto?");
    for (let i = 0; i < 2; i++) await memo.director.route(aRouteRequest(body)); // kept from the second sighting
    const { entries, bytes } = memo.director.memoStats();
    expect(entries).toBe(1);
    expect(bytes).toBeGreaterThan(body.length);
    expect(await gauge("epp_request_memo_entries")).toBe(entries);
    expect(await gauge("epp_request_memo_bytes")).toBe(bytes);
  });

  it("re-hashes a remembered body when the block size changes", async () => {
    // LearntBlockSize keeps its first size for life; the memo must not rely on that.
    const sizes = { value: 16 as number | null };
    const bySize = new Map<number, RequestHasher>();
    const hasherOf = (size: number) => {
      if (!bySize.has(size)) bySize.set(size, new RequestHasher(KEYS, new LearntBlockSize(size, logger)));
      return bySize.get(size)!;
    };
    const memo = aDirector(1 << 24, {
      get blockSize() {
        return sizes.value;
      },
      scheme: KEYS.scheme,
      hashSeed: KEYS.hashSeed,
      hash: (tokens, extras) =>
        sizes.value === null ? new BigUint64Array(0) : hasherOf(sizes.value).hash(tokens, extras),
    });
    const body = chat("Which hotels are approved in Lisbon?");
    const route = () => memo.director.route(aRouteRequest(body));
    for (let i = 0; i < 3; i++) await route();
    expect(await memo.memoCount("hit")).toBe(1);
    const at16 = memo.asked[2]!.blockHashes.length;
    sizes.value = 32;
    await route();
    expect(await memo.memoCount("hit")).toBe(1);
    expect(memo.asked[3]!.blockHashes.length).toBe(Math.floor(at16 / 2));
    await route();
    expect(await memo.memoCount("hit")).toBe(2);
    sizes.value = null; // unknown: routed on load alone, nothing from the memo
    await route();
    expect(memo.asked[5]!.blockHashes).toHaveLength(0);
    expect(await memo.memoCount("hit")).toBe(2);
  });
});
