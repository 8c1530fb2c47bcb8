import { describe, expect, it } from "vitest";
import { decodeBatch } from "../kv-events/decode.js";
import { EVENT_LAYOUTS, KvEventEncoder } from "./kv-event-encoder.js";
import type { SimEventBatch } from "./kv-event.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("KvEventEncoder", () => {
  it("writes the reference v0.10.0 BlockRemoved batch byte for byte (vllm-kv-events.md §4.4)", () => {
    const bytes = new KvEventEncoder().encode({
      ts: 1753315201.25,
      events: [{ type: "BlockRemoved", hashes: [9951355432383428481n], medium: "GPU" }],
    });
    expect(hex(bytes)).toBe(
      `93cb41da205de0500000919 2ac${Buffer.from("BlockRemoved").toString("hex")}91cf8a1a510a8cde378100`.replace(
        / /g,
        "",
      ),
    );
  });

  it("writes an integral ts as float64 and AllBlocksCleared as a 1-element array", () => {
    const bytes = new KvEventEncoder().encode({ ts: 1753315200, events: [{ type: "AllBlocksCleared" }] });
    expect(hex(bytes)).toBe(
      `93cb41da205de0000000 9191b0${Buffer.from("AllBlocksCleared").toString("hex")}00`.replace(/ /g, ""),
    );
  });

  const batch: SimEventBatch = {
    ts: 1753315200.25,
    events: [
      {
        type: "BlockStored",
        hashes: [334609804919786575n, 5n],
        parent: null,
        tokenIds: Array.from({ length: 128 }, (_, i) => i * 1000),
        blockSize: 64,
        medium: "GPU",
      },
      {
        type: "BlockStored",
        hashes: [11752632418425793902n],
        parent: 5n,
        tokenIds: Array.from({ length: 64 }, (_, i) => 151_000 + i),
        blockSize: 64,
        medium: "GPU",
      },
      { type: "BlockRemoved", hashes: [18446744073709551615n], medium: "GPU" },
      { type: "AllBlocksCleared" },
    ],
  };

  for (const layout of EVENT_LAYOUTS) {
    it(`round-trips through kvpick's decoder in layout ${layout}`, () => {
      const decoded = decodeBatch(new KvEventEncoder({ layout }).encode(batch));
      expect(decoded.ts).toBe(batch.ts);
      expect(decoded.unknownTags).toBe(0);
      expect(decoded.extraFields).toBe(0);
      expect(decoded.dataParallelRank).toBe(layout === "v0.9.0" ? null : 0);
      const [a, b, c, d] = decoded.events;
      if (a?.type !== "BlockStored" || b?.type !== "BlockStored" || c?.type !== "BlockRemoved")
        throw new Error("wrong event types");
      expect([...a.blockHashes]).toEqual([334609804919786575n, 5n]);
      expect(a.parentBlockHash).toBeNull();
      expect([...a.tokenIds]).toEqual(
        batch.events[0]!.type === "BlockStored" ? batch.events[0]!.tokenIds : [],
      );
      expect(a.blockSize).toBe(64);
      expect(b.parentBlockHash).toBe(5n);
      expect([...c.blockHashes]).toEqual([18446744073709551615n]);
      expect(d?.type).toBe("AllBlocksCleared");
      if (layout !== "v0.9.0" && layout !== "v0.10.0") expect(a.medium).toBe("GPU");
    });
  }

  it("can send hashes as 32-byte bin (v0.10.2+, VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=0)", () => {
    const decoded = decodeBatch(new KvEventEncoder({ layout: "v0.10.2", hashesAsBytes: true }).encode(batch));
    const a = decoded.events[0]!;
    expect(a.type === "BlockStored" && [...a.blockHashes]).toEqual([334609804919786575n, 5n]);
  });
});
