// LoRA: a request naming an adapter is tokenized as its base model and hashed with vLLM's LoRA extra key
// (id up to vLLM 0.11.0, name from 0.11.1), checked end to end through the Director against the golden vectors.
import { describe, expect, it } from "vitest";
import { configProblems } from "../../test/support/config-problems.js";
import { loadVector } from "../../test/support/golden.js";
import { parseConfig } from "../config/load.js";
import { BlockHasher, type HashScheme, toDecimalStrings } from "../kv-index/block-hash.js";
import { createLogger } from "../observability/logger.js";
import { Metrics } from "../observability/metrics.js";
import { RouteMetrics } from "../observability/route-metrics.js";
import { anEndpoint, recordingScheduler, staticSource } from "../scheduling/scheduling.fixture.js";
import { Director } from "./director.js";
import { LoraAdapters } from "./lora-adapters.js";
import { aRouteRequest } from "./route-request.fixture.js";

interface HashCase {
  name: string;
  scheme: string;
  block_size: number;
  lora_key: number | string | null;
  cache_salt: string | null;
  blocks: { event_value_dec: string }[];
}
const vectors = loadVector<{
  cases: HashCase[];
  external_cross_checks: {
    lora_key: string | null;
    token_ids: number[];
    expected_event_values_dec: string[];
  }[];
}>("vllm-block-hashes.json");
const loraCase = (scheme: string, key: number | string) => {
  const c = vectors.cases.find((x) => x.scheme === scheme && x.lora_key === key && x.block_size === 64);
  if (c === undefined) throw new Error(`no vector for ${scheme} lora ${key}`);
  return c.blocks.map((b) => b.event_value_dec);
};

const tokenizer = {
  models: [] as string[],
  tokenIds: Uint32Array.from({ length: 200 }, (_, i) => i),
  async tokenize(model: string) {
    this.models.push(model);
    return { tokenIds: this.tokenIds, renderMicros: 0, tokenizeMicros: 0 };
  },
};

/** Routes one chat request through a Director and returns what the scheduler was asked. */
async function route(
  tokenizerConfig: Record<string, unknown>,
  model: string,
  pods = [anEndpoint("10.0.0.1:8000")],
  blockSize = 64,
) {
  const config = parseConfig({ tokenizer: { hashSeed: "42", blockSize, ...tokenizerConfig } });
  const endpoints = staticSource(pods);
  const scheduler = recordingScheduler(pods[0]!);
  const { asked } = scheduler;
  tokenizer.models = [];
  const director = new Director({
    tokenizer,
    hasher: new BlockHasher({
      scheme: config.tokenizer.hashAlgo as HashScheme,
      hashSeed: "42",
      blockSize: config.tokenizer.blockSize ?? 64,
    }),
    scheduler,
    endpoints,
    logger: createLogger({ level: "silent" }),
    recorder: new RouteMetrics(new Metrics()),
    loras: new LoraAdapters(config.tokenizer, endpoints),
  });
  const body = Buffer.from(JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }));
  const out = await director.route(aRouteRequest(body));
  expect(out.kind).toBe("routed");
  const req = asked[0]!;
  return { req, chain: toDecimalStrings(req.blockHashes), tokenizedAs: tokenizer.models[0] };
}

describe("LoRA-keyed hashing through the Director", () => {
  it("vLLM ≥ 0.11.1 (sha256_cbor): the adapter's name, the base model's tokenizer", async () => {
    const { req, chain, tokenizedAs } = await route(
      { hashAlgo: "sha256_cbor", loras: { "my-lora": { baseModel: "Qwen3-32B" } } },
      "my-lora",
    );
    expect(chain).toEqual(loraCase("sha256_cbor", "my-lora"));
    expect(tokenizedAs).toBe("Qwen3-32B");
    expect(req.loraAdapter).toBe("my-lora");
  });

  it("vLLM 0.10.x: the adapter's int id (auto with sha256_cbor_64bit; id forced on sha256_cbor)", async () => {
    const id1 = { loras: { sql: { id: 1 } } };
    expect((await route(id1, "sql")).chain).toEqual(loraCase("sha256_cbor_64bit", 1));
    expect((await route({ ...id1, hashAlgo: "sha256_cbor", loraKey: "id" }, "sql")).chain).toEqual(
      loraCase("sha256_cbor", 1),
    );
  });

  it("an adapter the pods report in vllm:lora_requests_info is hashed by name without configuration", async () => {
    const x = vectors.external_cross_checks.find((c) => c.lora_key === "Alice")!;
    tokenizer.tokenIds = Uint32Array.from(x.token_ids);
    try {
      const pod = anEndpoint("10.0.0.1:8000", { lora: { maxLora: 2, running: ["Alice"], waiting: [] } });
      const { req, chain } = await route({ hashAlgo: "sha256_cbor" }, "Alice", [pod], 16);
      expect(chain).toEqual(x.expected_event_values_dec);
      expect(req.loraAdapter).toBe("Alice");
    } finally {
      tokenizer.tokenIds = Uint32Array.from({ length: 200 }, (_, i) => i);
    }
  });

  it("base models hash without a key; with LoRA configured they are no adapter (affinity: none needed)", async () => {
    const plain = vectors.cases.find(
      (c) =>
        c.scheme === "sha256_cbor_64bit" &&
        c.block_size === 64 &&
        c.lora_key === null &&
        c.cache_salt === null,
    )!;
    const base = await route(
      { loras: { sql: { id: 1 } }, models: { "Qwen3-32B": { tokenizerDir: "/x" } } },
      "Qwen3-32B",
    );
    expect(base.chain).toEqual(plain.blocks.map((b) => b.event_value_dec));
    expect(base.req.loraAdapter).toBeNull();
    expect((await route({}, "whatever")).req.loraAdapter).toBeUndefined(); // no LoRA knowledge: GIE's reading
  });
});

describe("LoraAdapters", () => {
  const config = (tokenizer: Record<string, unknown>) => parseConfig({ tokenizer }).tokenizer;

  it("chooses the key scheme from tokenizer.loraKey, or from the hash algorithm", () => {
    expect(new LoraAdapters(config({})).keyScheme).toBe("id"); // sha256_cbor_64bit = vLLM 0.10.0–0.10.1
    expect(new LoraAdapters(config({ hashAlgo: "sha256_cbor" })).keyScheme).toBe("name");
    expect(new LoraAdapters(config({ loraKey: "name" })).keyScheme).toBe("name");
  });

  it("requires an id per adapter when vLLM keys by id, naming the field", () => {
    expect(configProblems(() => new LoraAdapters(config({ loras: { a: {}, b: { id: 2 } } })))).toEqual([
      expect.stringMatching(/^tokenizer\.loras\.a\.id: required/),
    ]);
  });

  it("routes an adapter it cannot key (id scheme, only reported by the pods) without hashes", () => {
    const pods = staticSource([
      anEndpoint("10.0.0.1:8000", { lora: { maxLora: 2, running: [], waiting: ["x"] } }),
    ]);
    expect(new LoraAdapters(config({}), pods).resolve("x")).toEqual({
      adapter: "x",
      tokenizerModel: "",
      hashKey: null,
      hashable: false,
    });
  });
});
