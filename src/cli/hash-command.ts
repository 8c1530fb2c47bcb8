// `kvpick hash`: an OpenAI request body → the vLLM block hashes kvpick computes for it, so an operator can
// compare them with the hashes a pod publishes. Exit 0 on success, 2 on bad input (one line on stderr).
import { readFile } from "node:fs/promises";
import { configSchema, REPRODUCIBLE_ALGOS } from "../config/schema.js";
import { EppError } from "../errors.js";
import { BlockHasher, type HashScheme, toDecimalStrings } from "../kv-index/block-hash.js";
import { createLogger } from "../observability/logger.js";
import { parseRequestJson } from "../tokenization/python-json.js";
import { type OpenAiEndpoint, TokenizationService } from "../tokenization/tokenization-service.js";
import { type FlagSpec, parseFlags, usage } from "./flags.js";

const SPECS: Record<string, FlagSpec> = {
  "model-dir": {
    kind: "string",
    help: "tokenizer directory (tokenizer.json, tokenizer_config.json), or bundled:qwen3 | bundled:llama3_1 | bundled:deepseek_v3 | bundled:gemma3",
    default: "bundled Qwen3",
  },
  "block-size": { kind: "int", help: "vLLM --block-size", default: "64" },
  "hash-seed": { kind: "string", help: "the pods' PYTHONHASHSEED", default: "42" },
  algo: {
    kind: "string",
    help: `vLLM --prefix-caching-hash-algo (${REPRODUCIBLE_ALGOS.join(" | ")})`,
    default: "sha256_cbor_64bit",
  },
  "hash-algo": { kind: "string", help: "same as --algo" },
  endpoint: {
    kind: "string",
    help: "/v1/chat/completions | /v1/completions",
    default: "from the body: messages → chat, prompt → completions",
  },
  "token-ids": { kind: "bool", help: "also print the prompt token ids" },
};

const SYNOPSIS = "[flags] [REQUEST.json | -]   (no file or - reads the body from stdin)";

class InputError extends Error {}

async function readBody(path: string | undefined): Promise<Record<string, unknown>> {
  let text: string;
  try {
    if (path === undefined || path === "-") {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      text = Buffer.concat(chunks).toString("utf8");
    } else text = await readFile(path, "utf8");
  } catch (err) {
    throw new InputError(`cannot read ${path ?? "stdin"}: ${(err as Error).message}`);
  }
  let body: unknown;
  try {
    body = parseRequestJson(text); // as the request path reads it: Python-faithful values, bounded depth
  } catch (err) {
    throw new InputError(`request body is not JSON: ${(err as Error).message}`);
  }
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw new InputError("request body must be a JSON object");
  return body as Record<string, unknown>;
}

export async function runHashCommand(argv: string[]): Promise<number> {
  const fail = (message: string): number => {
    process.stderr.write(`kvpick hash: ${message.replace(/\s*\n\s*/g, " ")}\n`);
    return 2;
  };
  let service: TokenizationService | undefined;
  try {
    const { values, positionals, help } = parseFlags(argv, SPECS);
    if (help) {
      process.stdout.write(`${usage("hash", SYNOPSIS, SPECS)}\n`);
      return 0;
    }
    if (positionals.length > 1) return fail(`expected at most one request file, got ${positionals.length}`);
    const blockSize = (values["block-size"] as number | undefined) ?? 64;
    if (blockSize < 1 || blockSize > 1024)
      return fail(`--block-size: expected integer 1..1024, got ${blockSize}`);
    const algo = ((values.algo ?? values["hash-algo"]) as string | undefined) ?? "sha256_cbor_64bit";
    if (!(REPRODUCIBLE_ALGOS as readonly string[]).includes(algo)) {
      const why =
        algo === "sha256" || algo === "xxhash"
          ? ` (${algo} hashes a Python pickle: its values cannot be reproduced outside Python; kvpick serve still indexes such pods by token keys)`
          : "";
      return fail(`--algo: expected one of ${REPRODUCIBLE_ALGOS.join(", ")}, got "${algo}"${why}`);
    }
    const endpointFlag = values.endpoint as string | undefined;
    if (
      endpointFlag !== undefined &&
      endpointFlag !== "/v1/chat/completions" &&
      endpointFlag !== "/v1/completions"
    ) {
      return fail(`--endpoint: expected /v1/chat/completions or /v1/completions, got "${endpointFlag}"`);
    }
    let seed = values["hash-seed"] as string | undefined;
    if (seed === undefined) {
      seed = "42";
      process.stderr.write(
        'kvpick hash: --hash-seed not given, using "42" (the reference deployment\'s PYTHONHASHSEED)\n',
      );
    }
    const body = await readBody(positionals[0]);
    const endpoint: OpenAiEndpoint | undefined =
      (endpointFlag as OpenAiEndpoint | undefined) ??
      ("messages" in body ? "/v1/chat/completions" : "prompt" in body ? "/v1/completions" : undefined);
    if (endpoint === undefined) return fail("request body has neither messages nor prompt");
    const modelDir = values["model-dir"] as string | undefined;
    const config = configSchema.parse({
      tokenizer: { workerThreads: 0, ...(modelDir === undefined ? {} : { defaultTokenizerDir: modelDir }) },
    }).tokenizer;
    service = new TokenizationService({ config, logger: createLogger({ level: "silent" }) });
    const { tokenIds } = await service.tokenize(String(body.model ?? ""), endpoint, body);
    const salt = body.cache_salt;
    if (salt !== undefined && salt !== null && typeof salt !== "string")
      return fail("cache_salt: expected a string");
    const hasher = new BlockHasher({ scheme: algo as HashScheme, hashSeed: seed, blockSize });
    const chain = hasher.hash(tokenIds, { cacheSalt: salt ?? null });
    const out: Record<string, unknown> = {
      tokens: tokenIds.length,
      blockSize,
      blockHashes: toDecimalStrings(chain),
    };
    if (values["token-ids"] === true) out.tokenIds = Array.from(tokenIds);
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return 0;
  } catch (err) {
    if (err instanceof InputError || err instanceof EppError || (err as Error).name === "FlagError") {
      return fail((err as Error).message);
    }
    throw err;
  } finally {
    await service?.stop();
  }
}
