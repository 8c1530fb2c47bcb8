import { describe, expect, it } from "vitest";
import { BlockIndex, UNKNOWN_MEDIUM_WEIGHT } from "./block-index.js";
import { spyOnTypedArrays } from "../../test/support/typed-array-spy.js";

const W = { GPU: 1, CPU: 0.8 };
const chainOf = (...hashes: bigint[]) => BigUint64Array.from(hashes);
const words = (...hashes: bigint[]) => new Uint32Array(chainOf(...hashes).buffer);
const store = (ix: BlockIndex, pod: string, medium: string, ...h: bigint[]) =>
  ix.store(pod, medium, words(...h), h.length);
const remove = (ix: BlockIndex, pod: string, medium: string, ...h: bigint[]) =>
  ix.remove(pod, medium, words(...h), h.length);
const match = (ix: BlockIndex, chain: bigint[], pods: string[]) => {
  const r = ix.matchPrefix(chainOf(...chain), pods);
  return { blocks: [...r.blocks], weighted: [...r.weighted].map((x) => Math.round(x * 1000) / 1000) };
};

const BIG = [0xffffffffffffffffn, 0x8000000000000001n, 12056132650316601216n, 1n, 2n, 3n];

describe("BlockIndex", () => {
  it("counts the longest consecutive prefix from block 0 per pod", () => {
    const ix = new BlockIndex({ maxEntries: 100, mediumWeights: W });
    store(ix, "a", "GPU", BIG[0]!, BIG[1]!, BIG[2]!);
    store(ix, "b", "GPU", BIG[0]!, BIG[2]!); // hole at block 1
    store(ix, "c", "GPU", BIG[1]!, BIG[2]!); // no block 0
    expect(match(ix, [BIG[0]!, BIG[1]!, BIG[2]!, BIG[3]!], ["a", "b", "c", "zz"])).toEqual({
      blocks: [3, 1, 0, 0],
      weighted: [3, 1, 0, 0],
    });
  });

  it("weights each block by the best medium the pod holds it in", () => {
    const ix = new BlockIndex({ maxEntries: 100, mediumWeights: W });
    store(ix, "a", "CPU", 1n, 2n, 3n);
    store(ix, "a", "GPU", 2n);
    store(ix, "b", "DISK", 1n);
    expect(match(ix, [1n, 2n, 3n], ["a", "b"])).toEqual({
      blocks: [3, 1],
      weighted: [2.6, UNKNOWN_MEDIUM_WEIGHT],
    });
  });

  it("removes only the copy of the named medium, and reference-counts duplicate stores", () => {
    const ix = new BlockIndex({ maxEntries: 100, mediumWeights: W });
    store(ix, "a", "GPU", 1n, 2n);
    store(ix, "a", "GPU", 2n); // a second physical copy of block 2
    store(ix, "a", "CPU", 2n);
    remove(ix, "a", "GPU", 2n);
    expect(match(ix, [1n, 2n], ["a"]).weighted).toEqual([2]);
    remove(ix, "a", "GPU", 2n);
    expect(match(ix, [1n, 2n], ["a"])).toEqual({ blocks: [2], weighted: [1.8] });
    remove(ix, "a", "CPU", 2n);
    expect(match(ix, [1n, 2n], ["a"]).blocks).toEqual([1]);
    expect(ix.stats()).toEqual({ entries: 1, blocks: 1, pods: 1, evictions: 0 });
    remove(ix, "a", "CPU", 1n); // unknown copy: ignored
    remove(ix, "nobody", "GPU", 1n);
    expect(ix.stats().entries).toBe(1);
  });

  it("clears one pod in full and leaves the others", () => {
    const ix = new BlockIndex({ maxEntries: 1000, mediumWeights: W });
    const hashes = Array.from({ length: 50 }, (_, i) => BigInt(i) * 0x100000001n + 7n);
    store(ix, "a", "GPU", ...hashes);
    store(ix, "a", "CPU", ...hashes);
    store(ix, "b", "GPU", ...hashes.slice(0, 10));
    expect(ix.hasPod("a")).toBe(true);
    ix.clearPod("a");
    expect(ix.hasPod("a")).toBe(false);
    expect(ix.stats()).toEqual({ entries: 10, blocks: 10, pods: 1, evictions: 0 });
    expect(match(ix, hashes, ["a", "b"]).blocks).toEqual([0, 10]);
    ix.clearPod("b");
    expect(ix.stats()).toEqual({ entries: 0, blocks: 0, pods: 0, evictions: 0 });
    store(ix, "c", "GPU", ...hashes); // slots and pod numbers are reused cleanly
    expect(match(ix, hashes, ["a", "b", "c"]).blocks).toEqual([0, 0, 50]);
  });

  it("evicts the largest pod's least recently stored entries past maxEntries", () => {
    const ix = new BlockIndex({ maxEntries: 4, mediumWeights: W });
    store(ix, "a", "GPU", 1n, 2n);
    store(ix, "b", "GPU", 1n);
    store(ix, "a", "GPU", 3n); // 4 entries: a holds 3, b holds 1
    store(ix, "a", "GPU", 4n); // 5 > 4: a is the largest pod, its oldest entry (block 1) goes
    expect(ix.stats()).toEqual({ entries: 4, blocks: 4, pods: 2, evictions: 1 });
    expect(match(ix, [1n], ["a", "b"]).blocks).toEqual([0, 1]);
    expect(match(ix, [2n, 3n, 4n], ["a"]).blocks).toEqual([3]);
    store(ix, "c", "GPU", 5n); // a again: block 2 goes
    expect(ix.stats().evictions).toBe(2);
    expect(match(ix, [2n], ["a"]).blocks).toEqual([0]);
    expect(match(ix, [1n], ["b"]).blocks).toEqual([1]);
    expect(match(ix, [5n], ["c"]).blocks).toEqual([1]);
  });

  it("keeps other pods' entries when one pod floods past the cap", () => {
    const ix = new BlockIndex({ maxEntries: 1000, mediumWeights: W });
    const honest = Array.from({ length: 100 }, (_, i) => BigInt(i + 1));
    store(ix, "honest-1", "GPU", ...honest);
    store(ix, "honest-2", "CPU", ...honest);
    for (let burst = 0; burst < 50; burst++) {
      const flood = Array.from({ length: 500 }, (_, i) => BigInt(1_000_000 + burst * 500 + i));
      store(ix, "flooder", "GPU", ...flood);
    }
    expect(ix.stats().entries).toBe(1000);
    expect(ix.stats().evictions).toBe(200 + 25_000 - 1000);
    // The honest pods are far below their share: untouched. The flooder keeps its newest 800 entries.
    expect(match(ix, honest, ["honest-1", "honest-2", "flooder"]).blocks).toEqual([100, 100, 0]);
    const newest = Array.from({ length: 800 }, (_, i) => BigInt(1_000_000 + 25_000 - 800 + i));
    expect(match(ix, newest, ["flooder"]).blocks).toEqual([800]);
    // Under pressure from two large pods, they even out (450 each) and the small one keeps its 100.
    const more = Array.from({ length: 900 }, (_, i) => BigInt(5_000_000 + i));
    store(ix, "honest-1", "GPU", ...more);
    expect(match(ix, honest, ["honest-1", "honest-2"]).blocks).toEqual([0, 100]);
    expect(match(ix, more.slice(450), ["honest-1"]).blocks).toEqual([450]);
    expect(match(ix, more.slice(449), ["honest-1"]).blocks).toEqual([0]);
    expect(match(ix, newest.slice(350), ["flooder"]).blocks).toEqual([450]);
    expect(match(ix, newest.slice(349), ["flooder"]).blocks).toEqual([0]);
    expect(ix.stats().entries).toBe(1000);
  });

  it("survives growth and heavy churn with the same answers as a plain model", () => {
    const ix = new BlockIndex({ maxEntries: 1 << 20, mediumWeights: W });
    const model = new Map<string, Set<bigint>>();
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const pods = ["p0", "p1", "p2", "p3"];
    for (let step = 0; step < 20000; step++) {
      const pod = pods[rnd(4)]!;
      const h = BigInt(rnd(3000)) << BigInt(rnd(40));
      const set = model.get(pod) ?? new Set<bigint>();
      model.set(pod, set);
      if (rnd(3) === 0) {
        remove(ix, pod, "GPU", h);
        set.delete(h);
      } else if (!set.has(h)) {
        store(ix, pod, "GPU", h);
        set.add(h);
      }
      if (step % 5000 === 4999) {
        const victim = pods[rnd(4)]!;
        ix.clearPod(victim);
        model.delete(victim);
      }
    }
    let total = 0;
    for (const [pod, set] of model) {
      total += set.size;
      for (const h of set) expect(match(ix, [h], [pod]).blocks).toEqual([1]);
    }
    expect(ix.stats().entries).toBe(total);
  });

  it("answers duplicate pod ids and sub-array chains", () => {
    const ix = new BlockIndex({ maxEntries: 100, mediumWeights: W });
    store(ix, "a", "GPU", 1n, 2n, 3n);
    const big = chainOf(9n, 1n, 2n, 3n).subarray(1);
    const r = ix.matchPrefix(big, ["a", "a", "b"]);
    expect([...r.blocks]).toEqual([3, 3, 0]);
    expect(ix.matchPrefix(chainOf(), ["a"]).blocks[0]).toBe(0);
  });
});

describe("BlockIndex at its cap", () => {
  it("stays exact when one event stores far more blocks than the cap", () => {
    const ix = new BlockIndex({ maxEntries: 1000, mediumWeights: W });
    const hashes = Array.from({ length: 5000 }, (_, i) => BigInt(i + 1));
    store(ix, "a", "GPU", ...hashes);
    expect(ix.stats()).toEqual({ entries: 1000, blocks: 1000, pods: 1, evictions: 4000 });
    expect(match(ix, hashes.slice(4000), ["a"]).blocks).toEqual([1000]);
    ix.clearPod("a");
    expect(ix.stats().entries).toBe(0);
  });

  it("keeps many pods per block consistent through growth, removal and clearing", () => {
    const ix = new BlockIndex({ maxEntries: 100_000, mediumWeights: W });
    const pods = Array.from({ length: 40 }, (_, i) => `p${i}`);
    const chain = [11n, 22n, 33n];
    for (const p of pods) {
      store(ix, p, "GPU", ...chain);
      store(ix, p, "CPU", ...chain);
    }
    expect(ix.stats()).toEqual({ entries: 240, blocks: 3, pods: 40, evictions: 0 });
    for (const p of pods.slice(0, 20)) remove(ix, p, "GPU", 22n);
    for (const p of pods.slice(10, 30)) ix.clearPod(p);
    const r = ix.matchPrefix(BigUint64Array.from(chain), pods);
    const want = pods.map((_, i) => (i >= 10 && i < 30 ? 0 : 3));
    expect([...r.blocks]).toEqual(want);
    const wantW = pods.map((_, i) => (i < 10 ? 2.8 : i < 30 ? 0 : 3));
    expect([...r.weighted].map((x) => Math.round(x * 10) / 10)).toEqual(wantW);
  });
});

describe("BlockIndex read-outs for a mirror", () => {
  it("reports each entry's reference count and lists a pod's entries exactly", () => {
    const ix = new BlockIndex({ maxEntries: 100, mediumWeights: W });
    store(ix, "a", "GPU", BIG[0]!, BIG[1]!);
    store(ix, "a", "GPU", BIG[1]!);
    store(ix, "a", "CPU", BIG[2]!);
    store(ix, "b", "GPU", BIG[0]!);
    const w = (h: bigint) => new Uint32Array(BigUint64Array.of(h).buffer);
    const ref = (pod: string, medium: string, h: bigint) => ix.refCount(pod, medium, w(h)[0]!, w(h)[1]!);
    expect(ref("a", "GPU", BIG[1]!)).toBe(2);
    expect(ref("a", "GPU", BIG[0]!)).toBe(1);
    expect(ref("a", "CPU", BIG[1]!)).toBe(0);
    expect(ref("nobody", "GPU", BIG[0]!)).toBe(0);
    expect(ref("a", "DISK", BIG[0]!)).toBe(0);
    expect(ix.podIds().sort()).toEqual(["a", "b"]);
    const e = ix.podEntries("a");
    const rows = e.media.map((m, i) => [
      ((BigInt(e.words[2 * i + 1]!) << 32n) | BigInt(e.words[2 * i]!)).toString(),
      m,
      e.refs[i],
    ]);
    expect(rows.sort()).toEqual(
      [
        [BIG[0]!.toString(), "GPU", 1],
        [BIG[1]!.toString(), "GPU", 2],
        [BIG[2]!.toString(), "CPU", 1],
      ].sort(),
    );
    ix.clearPod("b");
    expect(ix.podIds()).toEqual(["a"]);
    expect(ix.podEntries("b").refs.length).toBe(0);
  });
});

describe("BlockIndex growth (issue 16)", () => {
  it("takes a million blocks without one big copy of its tables, nodes or chunks, and still matches", () => {
    let ix: BlockIndex | null = null;
    const n = 1_000_000;
    const w = new Uint32Array(2 * n);
    for (let i = 0; i < n; i++) {
      w[2 * i] = Math.imul(i + 1, 0x2545f491) >>> 0;
      w[2 * i + 1] = i;
    }
    const largest = spyOnTypedArrays(() => {
      ix = new BlockIndex({ maxEntries: 4_000_000, mediumWeights: W });
      for (let off = 0; off < n; off += 4096) {
        ix.store("a", "GPU", w.subarray(2 * off), Math.min(4096, n - off));
        ix.store("b", "CPU", w.subarray(2 * off), Math.min(512, n - off));
      }
    });
    expect(largest).toBeLessThanOrEqual(1 << 17);
    const built = ix as unknown as BlockIndex;
    expect(built.stats()).toEqual({ entries: n + 245 * 512, blocks: n, pods: 2, evictions: 0 });
    const chain = new BigUint64Array(w.slice(0, 2 * 600).buffer);
    const r = built.matchPrefix(chain, ["a", "b"]);
    expect([...r.blocks]).toEqual([600, 512]);
    expect(built.podEntries("b").words.length).toBe(2 * 245 * 512);
  });
});
