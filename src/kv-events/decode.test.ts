import { encode } from "@msgpack/msgpack";
import { describe, expect, it } from "vitest";
import { loadVector } from "../../test/support/golden.js";
import { DecodeError, decodeBatch, type KvEvent } from "./decode.js";

interface GoldenMessage {
  seq: number;
  frames_hex: string[];
  decoded: { ts: number; data_parallel_rank: number | null; events: Record<string, unknown>[] };
}
interface GoldenLayout {
  layout: string;
  note: string;
  topic: string;
  messages: GoldenMessage[];
}
const golden = loadVector<{ layouts: GoldenLayout[] }>("vllm-kv-event-frames.json");

const SNAKE: Record<string, string> = {
  blockHashes: "block_hashes",
  parentBlockHash: "parent_block_hash",
  tokenIds: "token_ids",
  blockSize: "block_size",
  loraId: "lora_id",
  medium: "medium",
  loraName: "lora_name",
  extraKeys: "extra_keys",
  groupIdx: "group_idx",
  kvCacheSpecKind: "kv_cache_spec_kind",
  kvCacheSpecSlidingWindow: "kv_cache_spec_sliding_window",
};

/** The golden JSON's hash rendering (decimal string above 2^53, bytes → low 64 bits) as a bigint. */
function goldenHash(v: unknown): bigint {
  if (typeof v === "object" && v !== null && "bytes_hex" in v) {
    return BigInt(`0x${(v as { bytes_hex: string }).bytes_hex.slice(-16)}`);
  }
  return BigInt(v as string | number);
}

/** Our event rendered like the golden JSON (snake_case keys, hashes as bigint, arrays plain). */
function render(ev: KvEvent): Record<string, unknown> {
  const out: Record<string, unknown> = { type: ev.type };
  for (const [k, v] of Object.entries(ev)) {
    if (k === "type") continue;
    const name = SNAKE[k]!;
    if (v instanceof BigUint64Array) out[name] = [...v];
    else if (v instanceof Uint32Array) out[name] = [...v];
    else out[name] = v;
  }
  return out;
}

function expected(ev: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(ev)) {
    if (k.startsWith("_")) continue;
    if (k === "block_hashes") out[k] = (v as unknown[]).map(goldenHash);
    else if (k === "parent_block_hash") out[k] = v === null ? null : goldenHash(v);
    else out[k] = v;
  }
  return out;
}

const hex = (s: string) => Buffer.from(s, "hex");

describe("decodeBatch: golden vLLM frames", () => {
  for (const layout of golden.layouts) {
    for (const msg of layout.messages) {
      it(`decodes ${layout.layout} (${layout.note}) seq ${msg.seq} exactly`, () => {
        const batch = decodeBatch(hex(msg.frames_hex[2]!));
        expect(batch.ts).toBe(msg.decoded.ts);
        expect(batch.dataParallelRank).toBe(msg.decoded.data_parallel_rank);
        expect(batch.unknownTags).toBe(0);
        expect(batch.extraFields).toBe(0);
        expect(batch.events).toHaveLength(msg.decoded.events.length);
        batch.events.forEach((ev, i) => {
          const want = expected(msg.decoded.events[i]!);
          const got = render(ev);
          for (const [k, v] of Object.entries(got)) {
            // Fields the layout does not carry decode as null ("missing trailing fields are None").
            expect(k in want ? want[k] : null, `${k}`).toEqual(v);
          }
          for (const k of Object.keys(want)) expect(got).toHaveProperty(k);
        });
      });
    }
  }

  it("keeps u64 hashes above 2^53 exact", () => {
    const batch = decodeBatch(hex(golden.layouts[0]!.messages[1]!.frames_hex[2]!));
    const ev = batch.events[0]!;
    expect(ev.type === "BlockRemoved" && ev.blockHashes[0]).toBe(9951355432383428481n);
  });
});

describe("decodeBatch: other shapes", () => {
  const stored = (extra: unknown[] = []) => [
    "BlockStored",
    [1, 300, 70000, 5_000_000_000, -1],
    null,
    [1, 2, 200, 70000],
    2,
    null,
    ...extra,
  ];

  it("normalises every int width and negatives (two's complement) to u64", () => {
    const b = decodeBatch(encode([1.5, [stored()], 0]));
    const ev = b.events[0]!;
    expect(ev.type === "BlockStored" && [...ev.blockHashes]).toEqual([
      1n,
      300n,
      70000n,
      5000000000n,
      2n ** 64n - 1n,
    ]);
    expect(ev.type === "BlockStored" && [...ev.tokenIds]).toEqual([1, 2, 200, 70000]);
  });

  it("accepts a map outer batch, the v0.9.0 batch without a rank, and counts unknowns", () => {
    const m = decodeBatch(encode({ ts: 2, events: [["AllBlocksCleared"]], data_parallel_rank: 3, extra: 1 }));
    expect(m).toMatchObject({
      ts: 2,
      dataParallelRank: 3,
      extraFields: 1,
      events: [{ type: "AllBlocksCleared" }],
    });
    const old = decodeBatch(encode([2, [["BlockRemoved", [7]]]]));
    expect(old.dataParallelRank).toBeNull();
    const unk = decodeBatch(
      encode([
        2,
        [
          ["SomethingNew", 1, 2],
          stored(["GPU", null, [null, null, null, null, null], 0, "full_attention", null, "future"]),
          { type: "Other" },
          ["BlockRemoved", [1], "CPU", 0, 9],
        ],
        0,
      ]),
    );
    expect(unk.unknownTags).toBe(2);
    expect(unk.extraFields).toBe(2); // "future" after the 11 known BlockStored fields, 9 after group_idx
    expect(unk.events.map((e) => e.type)).toEqual(["BlockStored", "BlockRemoved"]);
  });

  it("treats missing map keys as None and skips unknown keys", () => {
    const b = decodeBatch(encode([0, [{ type: "BlockStored", block_hashes: [5], new_field: { a: 1 } }], 0]));
    expect(b.extraFields).toBe(1);
    expect(b.events[0]).toMatchObject({
      type: "BlockStored",
      parentBlockHash: null,
      medium: null,
      groupIdx: null,
    });
  });

  const bad: [string, Uint8Array][] = [
    ["empty", new Uint8Array(0)],
    ["an int", encode(5)],
    ["a short batch", encode([1])],
    ["a non-list events", encode([1, 2, 0])],
    ["an event that is a number", encode([1, [3], 0])],
    ["a BlockStored without hashes", encode([1, [["BlockStored"]], 0])],
    ["a string hash", encode([1, [["BlockRemoved", ["x"]]], 0])],
    ["a negative token id", encode([1, [["BlockStored", [1], null, [-1], 1, null]], 0])],
    ["trailing bytes", new Uint8Array([...encode([1, [], 0]), 0])],
    ["a huge array header", new Uint8Array([0x92, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff])],
    ["the reserved byte", new Uint8Array([0x92, 0x01, 0x91, 0xc1])],
    [
      "deep nesting",
      new Uint8Array([0x92, 0x01, 0x91, 0x93, 0xa1, 0x58, 0x01, ...new Array(100).fill(0x91), 0x01]),
    ],
  ];
  for (const [name, bytes] of bad) {
    it(`rejects ${name} with a DecodeError`, () => {
      expect(() => decodeBatch(bytes)).toThrow(DecodeError);
    });
  }

  it("throws only DecodeError on every truncation of every golden payload and on random bytes", () => {
    let seed = 7;
    const rnd = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed >>> 24;
    };
    const check = (bytes: Uint8Array) => {
      try {
        decodeBatch(bytes);
      } catch (e) {
        expect(e).toBeInstanceOf(DecodeError);
      }
    };
    for (const layout of golden.layouts) {
      for (const msg of layout.messages) {
        const full = hex(msg.frames_hex[2]!);
        for (let n = 0; n < full.length; n++)
          expect(() => decodeBatch(full.subarray(0, n))).toThrow(DecodeError);
        for (let k = 0; k < 200; k++) {
          const mutated = Buffer.from(full);
          mutated[rnd() % mutated.length] = rnd();
          check(mutated);
        }
      }
    }
    for (let k = 0; k < 2000; k++) check(Uint8Array.from({ length: 1 + (rnd() % 64) }, rnd));
  });
});
