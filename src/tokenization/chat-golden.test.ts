// Every case of shared/vectors/qwen3-chat-golden.json: rendered prompt, token ids and vLLM block hashes in
// both schemes, through the public TokenizationService. Fixed vectors, never skipped.
import { afterAll, describe, expect, it } from "vitest";
import { loadVector } from "../../test/support/golden.js";
import { configSchema } from "../config/schema.js";
import { BlockHasher, type HashScheme, toDecimalStrings } from "../kv-index/block-hash.js";
import { createLogger } from "../observability/logger.js";
import { type OpenAiEndpoint, TokenizationService } from "./tokenization-service.js";

interface GoldenCase {
  name: string;
  endpoint: OpenAiEndpoint;
  request: Record<string, unknown>;
  rendered_prompt: string;
  token_ids: number[];
  block_size: number;
  hash_seed: string;
  block_hashes: Record<HashScheme, string[]>;
}

const golden = loadVector<{ cases: GoldenCase[] }>("qwen3-chat-golden.json");
const logger = createLogger({ level: "silent" });

describe("Qwen3 chat golden vectors", () => {
  // workerThreads 0 here: the worker path is compared with the main thread in tokenization-service.test.ts.
  const service = new TokenizationService({ config: configSchema.parse({}).tokenizer, logger });
  const warm = new TokenizationService({
    config: { ...configSchema.parse({}).tokenizer, workerThreads: 0 },
    logger,
  });
  afterAll(async () => {
    await service.stop();
    await warm.stop();
  });

  it("has cases", () => expect(golden.cases.length).toBeGreaterThanOrEqual(6));

  for (const c of golden.cases) {
    describe(c.name, () => {
      if (c.endpoint === "/v1/chat/completions") {
        it("renders the prompt exactly", async () => {
          expect(await service.renderChat(String(c.request.model), c.request)).toBe(c.rendered_prompt);
        });
      }
      it("produces the exact token ids, cold and warm", async () => {
        const cold = await service.tokenize(String(c.request.model), c.endpoint, c.request);
        expect(Array.from(cold.tokenIds)).toEqual(c.token_ids);
        await warm.tokenize(String(c.request.model), c.endpoint, c.request);
        const again = await warm.tokenize(String(c.request.model), c.endpoint, c.request);
        expect(again.mode).toBe("cache");
        expect(Array.from(again.tokenIds)).toEqual(c.token_ids);
      });
      for (const scheme of ["sha256_cbor_64bit", "sha256_cbor"] as const) {
        it(`hashes to vLLM's blocks (${scheme})`, async () => {
          const { tokenIds } = await service.tokenize(String(c.request.model), c.endpoint, c.request);
          const hasher = new BlockHasher({ scheme, hashSeed: c.hash_seed, blockSize: c.block_size });
          expect(toDecimalStrings(hasher.hash(tokenIds))).toEqual(c.block_hashes[scheme]);
        });
      }
    });
  }
});
