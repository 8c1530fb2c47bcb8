import { describe, expect, it } from "vitest";
import { createLogger } from "../observability/logger.js";
import { LearntBlockSize } from "./learnt-block-size.js";
import { RequestHasher } from "./request-key-scheme.js";

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: "info",
    destination: { write: (s: string) => lines.push(JSON.parse(s)) },
  });
  return { lines, logger };
}

describe("LearntBlockSize", () => {
  it("learns the first size a pod reports, logs it once, and keeps it", () => {
    const { lines, logger } = capture();
    const s = new LearntBlockSize(null, logger);
    expect(s.value).toBeNull();
    expect(s.observe("10.0.0.1:8000", 16, "vllm:cache_config_info")).toBe(true);
    expect(s.observe("10.0.0.2:8000", 16, "BlockStored")).toBe(true);
    expect(s.value).toBe(16);
    expect(lines.map((l) => l.msg)).toEqual(["block size learnt: 16 from vllm:cache_config_info"]);
  });

  it("warns once per pod that reports another size and keeps the first one", () => {
    const { lines, logger } = capture();
    const s = new LearntBlockSize(null, logger);
    s.observe("a", 16, "BlockStored");
    for (let i = 0; i < 3; i++) expect(s.observe("b", 32, "BlockStored")).toBe(false);
    expect(s.observe("c", 32, "vllm:cache_config_info")).toBe(false);
    expect(s.value).toBe(16);
    const warns = lines.filter((l) => ["warn", 40].includes(l.level as string));
    expect(warns.map((l) => l.pod)).toEqual(["b", "c"]);
    expect(String(warns[0]!.msg)).toContain("--block-size");
  });

  it("never learns over a configured size", () => {
    const { lines, logger } = capture();
    const s = new LearntBlockSize(64, logger);
    expect(s.configured).toBe(true);
    expect(s.observe("a", 16, "vllm:cache_config_info")).toBe(false);
    expect(s.value).toBe(64);
    expect(lines).toHaveLength(1);
    expect(String(lines[0]!.msg)).toContain("tokenizer.blockSize");
  });

  it("ignores sizes vLLM cannot have", () => {
    const s = new LearntBlockSize(null, capture().logger);
    for (const bad of [0, -16, 1.5, 4096, Number.NaN]) expect(s.observe("a", bad, "BlockStored")).toBe(false);
    expect(s.value).toBeNull();
  });

  it("gives the request hasher no chain until the size is known, then the configured scheme's", () => {
    const s = new LearntBlockSize(null, capture().logger);
    const h = new RequestHasher({ scheme: "sha256_cbor_64bit", hashSeed: "42", comparable: true }, s);
    const tokens = Array.from({ length: 40 }, (_, i) => i);
    expect(h.blockSize).toBeNull();
    expect(h.hash(tokens)).toHaveLength(0);
    s.observe("a", 16, "BlockStored");
    expect(h.blockSize).toBe(16);
    expect(h.hash(tokens)).toHaveLength(2);
    expect(h.current()!.blockSize).toBe(16);
  });
});
