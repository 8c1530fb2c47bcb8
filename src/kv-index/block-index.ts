// The in-memory KV-block index: which pod holds which vLLM block hash, in which medium (GPU, CPU, …).
// Written only by src/kv-events (one batch at a time, synchronously, so a reader never sees half a batch);
// read by the scheduler through `matchPrefix`.
//
// Layout (all typed arrays, no per-entry objects):
// - BlockTable: hash → block slot, with the least-recently-stored order used for eviction.
// - Entries, one per (block, pod, medium): block slot, next entry of the same block, prev/next entry of the
//   same pod (the per-pod reverse index, so clearing a pod is O(its entries)), pod<<8|medium, ref count.
//   22 bytes per entry + ~28–32 bytes per distinct block: ≈ 50–60 bytes per entry when blocks are
//   mostly held by one pod, less when shared (bench/kv-index.bench.ts measures it).
import { BlockTable, HEAD, NIL, REC } from "./block-table.js";

/** Credit of a block held in a medium that has no configured weight (e.g. a connector's "DISK"). */
export const UNKNOWN_MEDIUM_WEIGHT = 0.5;
/** Media beyond this many distinct names share the last index (names come from the network). */
const MAX_MEDIA = 255;
const MAX_REF = 0xffff;

export interface BlockIndexOptions {
  /** Cap on block-pod-medium entries; past it whole least-recently-stored blocks are evicted. */
  maxEntries: number;
  /** Weight per medium name (vLLM's upper-case names, e.g. {GPU: 1, CPU: 0.8}). */
  mediumWeights: Record<string, number>;
}

export interface BlockIndexStats {
  /** Block-pod-medium entries. */
  entries: number;
  /** Distinct block hashes. */
  blocks: number;
  /** Pods holding at least one entry. */
  pods: number;
  /** Entries evicted by the cap since creation. */
  evictions: number;
}

function grow32(a: Uint32Array, size: number): Uint32Array<ArrayBuffer> {
  const b = new Uint32Array(size);
  b.set(a);
  return b;
}

export class BlockIndex {
  readonly maxEntries: number;
  readonly #blocks = new BlockTable();
  // Entries.
  /** Lookup-path fields interleaved, [next entry of the block (also the free list), pod<<8|medium], so a
   * list step touches one cache line. */
  #eLink = new Uint32Array(0);
  #eBlock = new Uint32Array(0);
  #ePodPrev = new Uint32Array(0);
  #ePodNext = new Uint32Array(0);
  #eRef = new Uint16Array(0);
  #eUsed = 0;
  #eFree = NIL;
  #entries = 0;
  #evictions = 0;
  // Pods: id ↔ small integer; per pod the head of its entry list and its entry count.
  readonly #podIdx = new Map<string, number>();
  #podHead: number[] = [];
  #podCount: number[] = [];
  #podFree: number[] = [];
  #podsWithEntries = 0;
  // Media: name ↔ small integer, weight per index.
  readonly #mediumIdx = new Map<string, number>();
  readonly #mediumWeight = new Float64Array(MAX_MEDIA + 1);
  readonly #weights: Record<string, number>;
  // matchPrefix scratch, reused so lookups allocate only their result.
  #podLocal = new Int32Array(0);
  #best = new Float64Array(0);

  constructor(options: BlockIndexOptions) {
    if (!Number.isInteger(options.maxEntries) || options.maxEntries < 1) {
      throw new RangeError(`maxEntries must be a positive integer, got ${options.maxEntries}`);
    }
    this.maxEntries = options.maxEntries;
    this.#weights = { ...options.mediumWeights };
  }

  /**
   * For each podIds[i]: blocks[i] = number of consecutive blocks of `chain`, from block 0, that the pod holds
   * in any medium; weighted[i] = sum over those blocks of the best medium weight the pod holds each in.
   * Unknown pods get 0. Runs in O(matched blocks × (pods + entries per block)); never allocates beyond the result.
   */
  matchPrefix(
    chain: BigUint64Array,
    podIds: readonly string[],
  ): { blocks: Uint32Array; weighted: Float64Array } {
    const n = podIds.length;
    const blocks = new Uint32Array(n);
    const weighted = new Float64Array(n);
    if (n === 0 || chain.length === 0 || this.#entries === 0) return { blocks, weighted };
    if (this.#best.length < n) this.#best = new Float64Array(n);
    if (this.#podLocal.length < this.#podHead.length) {
      this.#podLocal = new Int32Array(this.#podHead.length).fill(-1);
    }
    const podLocal = this.#podLocal;
    const lastW = this.#best;
    let alive = 0;
    let dupes = false;
    for (let l = 0; l < n; l++) {
      const p = this.#podIdx.get(podIds[l]!);
      if (p === undefined) continue;
      if (podLocal[p] !== -1) dupes = true;
      else {
        podLocal[p] = l;
        alive++;
      }
    }
    const words = new Uint32Array(chain.buffer, chain.byteOffset, chain.length * 2);
    const table = this.#blocks;
    const rec = table.rec;
    const link = this.#eLink;
    const mw = this.#mediumWeight;
    // Block-major walk: a pod advances when one of its entries is seen for block i while it holds 0..i−1
    // (blocks[l] === i); a second medium of the same block only upgrades the weight. Pods not seen stay
    // behind and never match again, so no per-pod pass is needed per block.
    for (let i = 0; i < chain.length && alive > 0; i++) {
      const slot = table.find(words[2 * i]!, words[2 * i + 1]!);
      if (slot < 0) break;
      const next = i + 1;
      alive = 0;
      for (let e = rec[slot * REC + HEAD]!; e !== NIL; e = link[2 * e]!) {
        const pm = link[2 * e + 1]!;
        const l = podLocal[pm >>> 8]!;
        if (l < 0) continue;
        const at = blocks[l]!;
        if (at === i) {
          const w = mw[pm & 0xff]!;
          blocks[l] = next;
          weighted[l]! += w;
          lastW[l] = w;
          alive++;
        } else if (at === next) {
          const w = mw[pm & 0xff]!;
          if (w > lastW[l]!) {
            weighted[l]! += w - lastW[l]!;
            lastW[l] = w;
          }
        }
      }
    }
    for (let l = 0; l < n; l++) {
      const p = this.#podIdx.get(podIds[l]!);
      if (p !== undefined) podLocal[p] = -1;
    }
    if (dupes) this.#copyDuplicates(podIds, blocks, weighted);
    return { blocks, weighted };
  }

  /** True when the pod holds at least one block. */
  hasPod(podId: string): boolean {
    const p = this.#podIdx.get(podId);
    return p !== undefined && this.#podCount[p]! > 0;
  }

  /** Forgets every block of the pod (it left the pool, restarted, or sent AllBlocksCleared). */
  clearPod(podId: string): void {
    const p = this.#podIdx.get(podId);
    if (p === undefined) return;
    this.#clearPodIdx(p);
    // Recycle the pod number so pod churn (new IPs over weeks) does not grow the pod arrays forever.
    this.#podIdx.delete(podId);
    this.#podFree.push(p);
  }

  stats(): BlockIndexStats {
    return {
      entries: this.#entries,
      blocks: this.#blocks.count,
      pods: this.#podsWithEntries,
      evictions: this.#evictions,
    };
  }

  /** Bytes held by the index's typed arrays (excluding the small pod/medium maps). */
  get bytes(): number {
    return this.#blocks.bytes + this.#eBlock.length * 22;
  }

  // ---- write API: used only by src/kv-events ----

  /**
   * Records that `podId` holds blocks words[2i], words[2i+1] (lo, hi) for i < count, in `medium`.
   * Storing a block twice counts it twice (vLLM can cache identical content in two physical blocks).
   */
  store(podId: string, medium: string, words: Uint32Array, count: number): void {
    const pm = (this.#pod(podId) << 8) | this.#medium(medium);
    for (let i = 0; i < count; i++) this.#storeOne(pm, words[2 * i]!, words[2 * i + 1]!);
    this.#evict();
  }

  /** Drops one reference of each block for that pod and medium only (a CPU copy outlives the GPU copy). */
  remove(podId: string, medium: string, words: Uint32Array, count: number): void {
    const p = this.#podIdx.get(podId);
    if (p === undefined) return;
    const pm = (p << 8) | this.#medium(medium);
    for (let i = 0; i < count; i++) this.#removeOne(pm, words[2 * i]!, words[2 * i + 1]!);
  }

  #storeOne(pm: number, lo: number, hi: number): void {
    const slot = this.#blocks.upsert(lo, hi);
    const rec = this.#blocks.rec;
    const h = slot * REC + HEAD;
    for (let e = rec[h]!; e !== NIL; e = this.#eLink[2 * e]!) {
      if (this.#eLink[2 * e + 1] === pm) {
        // Saturated counts stay until the pod is cleared or the block evicted: harmless, and 65k copies is absurd.
        if (this.#eRef[e]! < MAX_REF) this.#eRef[e]!++;
        return;
      }
    }
    const e = this.#allocEntry();
    const p = pm >>> 8;
    this.#eBlock[e] = slot;
    this.#eLink[2 * e + 1] = pm;
    this.#eRef[e] = 1;
    this.#eLink[2 * e] = rec[h]!;
    rec[h] = e;
    const ph = this.#podHead[p]!;
    this.#ePodPrev[e] = NIL;
    this.#ePodNext[e] = ph;
    if (ph !== NIL) this.#ePodPrev[ph] = e;
    this.#podHead[p] = e;
    if (this.#podCount[p]!++ === 0) this.#podsWithEntries++;
    this.#entries++;
  }

  #removeOne(pm: number, lo: number, hi: number): void {
    const slot = this.#blocks.find(lo, hi);
    if (slot < 0) return;
    for (let e = this.#blocks.rec[slot * REC + HEAD]!; e !== NIL; e = this.#eLink[2 * e]!) {
      if (this.#eLink[2 * e + 1] !== pm) continue;
      if (this.#eRef[e]! > 1 && this.#eRef[e]! < MAX_REF) this.#eRef[e]!--;
      else if (this.#eRef[e] === 1) this.#dropEntry(e, true);
      return;
    }
  }

  /** Unlinks an entry from its pod list and (when asked) its block list, freeing an emptied block. */
  #dropEntry(e: number, fromBlock: boolean): void {
    const slot = this.#eBlock[e]!;
    if (fromBlock) {
      const rec = this.#blocks.rec;
      const h = slot * REC + HEAD;
      if (rec[h] === e) rec[h] = this.#eLink[2 * e]!;
      else {
        let prev = rec[h]!;
        while (this.#eLink[2 * prev] !== e) prev = this.#eLink[2 * prev]!;
        this.#eLink[2 * prev] = this.#eLink[2 * e]!;
      }
      if (rec[h] === NIL) this.#blocks.free(slot);
    }
    const p = this.#eLink[2 * e + 1]! >>> 8;
    const prev = this.#ePodPrev[e]!;
    const next = this.#ePodNext[e]!;
    if (prev !== NIL) this.#ePodNext[prev] = next;
    else this.#podHead[p] = next;
    if (next !== NIL) this.#ePodPrev[next] = prev;
    if (--this.#podCount[p]! === 0) this.#podsWithEntries--;
    this.#eLink[2 * e] = this.#eFree;
    this.#eFree = e;
    this.#entries--;
  }

  #clearPodIdx(p: number): void {
    for (let e = this.#podHead[p]!; e !== NIL; ) {
      const next = this.#ePodNext[e]!;
      this.#dropEntry(e, true);
      e = next;
    }
  }

  #evict(): void {
    while (this.#entries > this.maxEntries) {
      const slot = this.#blocks.oldest();
      if (slot < 0) return;
      const rec = this.#blocks.rec;
      let e = rec[slot * REC + HEAD]!;
      rec[slot * REC + HEAD] = NIL;
      while (e !== NIL) {
        const next = this.#eLink[2 * e]!;
        this.#dropEntry(e, false);
        this.#evictions++;
        e = next;
      }
      this.#blocks.free(slot);
    }
  }

  #allocEntry(): number {
    if (this.#eFree !== NIL) {
      const e = this.#eFree;
      this.#eFree = this.#eLink[2 * e]!;
      return e;
    }
    if (this.#eUsed === this.#eBlock.length) {
      // ×1.5, capped just above maxEntries: one store may overshoot by a block's worth before eviction runs.
      const cap = this.maxEntries + 1024;
      const size = Math.min(cap, Math.max(1024, Math.ceil(this.#eBlock.length * 1.5)));
      this.#eLink = grow32(this.#eLink, size * 2);
      this.#eBlock = grow32(this.#eBlock, size);
      this.#ePodPrev = grow32(this.#ePodPrev, size);
      this.#ePodNext = grow32(this.#ePodNext, size);
      const ref = new Uint16Array(size);
      ref.set(this.#eRef);
      this.#eRef = ref;
    }
    return this.#eUsed++;
  }

  #pod(podId: string): number {
    let p = this.#podIdx.get(podId);
    if (p !== undefined) return p;
    p = this.#podFree.pop() ?? this.#podHead.length;
    if (p > 0xffffff) throw new RangeError("more than 16M distinct pods");
    this.#podIdx.set(podId, p);
    this.#podHead[p] = NIL;
    this.#podCount[p] = 0;
    return p;
  }

  #medium(name: string): number {
    let m = this.#mediumIdx.get(name);
    if (m !== undefined) return m;
    m = Math.min(this.#mediumIdx.size, MAX_MEDIA);
    if (m < MAX_MEDIA) this.#mediumIdx.set(name, m);
    this.#mediumWeight[m] = Object.hasOwn(this.#weights, name) ? this.#weights[name]! : UNKNOWN_MEDIUM_WEIGHT;
    return m;
  }

  #copyDuplicates(podIds: readonly string[], blocks: Uint32Array, weighted: Float64Array): void {
    const first = new Map<string, number>();
    for (let l = 0; l < podIds.length; l++) {
      const f = first.get(podIds[l]!);
      if (f === undefined) first.set(podIds[l]!, l);
      else {
        blocks[l] = blocks[f]!;
        weighted[l] = weighted[f]!;
      }
    }
  }
}
