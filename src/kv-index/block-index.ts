// The in-memory KV-block index: which pod holds which vLLM block hash, in which medium (GPU, CPU, …).
// Written only by src/kv-events (one batch at a time, synchronously, so a reader never sees half a batch);
// read by the scheduler through `matchPrefix`.
//
// Layout (all typed arrays, no per-entry objects):
// - BlockTable: hash → block slot (16-byte record: key, chunk offset, entry count), with the
//   least-recently-stored order used for eviction. ~25 bytes per block + ~6–11 bytes of hash table.
// Every array grows by pages or shards, never by one copy of the whole (a stall of 100+ ms at millions of
// entries: issue 16).
// - EntryChunks: per block, its entries contiguous — [pod<<8|medium, node] + a ref count = 10 bytes each
//   (chunk capacities are powers of two: a block held by 3 pods uses 4 slots).
// - Nodes, one per entry: the per-pod reverse index (block slot, prev, next = 12 bytes), so clearing a pod
//   is O(its entries) and a removal unlinks in O(1). Each pod's list runs newest → oldest (head → tail).
// Past the cap, eviction is fair between pods: the oldest entries of the pod holding the most go first, so
// one pod that floods (a bug, a storm of stores, a hostile pool member) cannot evict everybody else.
// ≈ 55 bytes per entry when blocks are held by one pod, less when shared (bench/kv-index.bench.ts).
import { BlockTable, NIL } from "./block-table.js";
import { EntryChunks } from "./entry-chunks.js";

/** Credit of a block held in a medium that has no configured weight (e.g. a connector's "DISK"). */
export const UNKNOWN_MEDIUM_WEIGHT = 0.5;
/** Media beyond this many distinct names share the last index (names come from the network). */
const MAX_MEDIA = 255;
const MAX_REF = 0xffff;
/** Node records: [block slot, prev, next], NODE_WORDS words each, 2^NODE_BITS nodes per page. */
const NODE_WORDS = 3;
const NODE_BITS = 14;
const NODE_MASK = (1 << NODE_BITS) - 1;
const N_PREV = 1;
const N_NEXT = 2;

export interface BlockIndexOptions {
  /** Cap on block-pod-medium entries; past it the largest pod's least recently stored entries are evicted. */
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

export class BlockIndex {
  readonly maxEntries: number;
  readonly #blocks: BlockTable;
  // Entries.
  readonly #chunks = new EntryChunks();
  // Nodes of the per-pod reverse lists (one per entry), next doubling as the free-node list. Paged, like the
  // block table and the chunks, so no growth step copies them all at once (an event-loop stall); one
  // interleaved record per node, so an unlink touches one cache line, not three.
  readonly #nodes: Uint32Array[] = [];
  #nUsed = 0;
  #nFree = NIL;
  #entries = 0;
  #evictions = 0;
  // Pods: id ↔ small integer; per pod the head of its entry list and its entry count.
  readonly #podIdx = new Map<string, number>();
  #podHead: number[] = [];
  #podTail: number[] = [];
  #podCount: number[] = [];
  #podFree: number[] = [];
  #podsWithEntries = 0;
  // Media: name ↔ small integer, weight per index.
  readonly #mediumIdx = new Map<string, number>();
  readonly #mediumWeight = new Float64Array(MAX_MEDIA + 1);
  readonly #weights: Record<string, number>;
  // matchPrefix scratch, reused so lookups allocate only their result.
  #at = new Int32Array(0);
  #sum = new Float64Array(0);
  #lastW = new Float64Array(0);

  constructor(options: BlockIndexOptions) {
    if (!Number.isInteger(options.maxEntries) || options.maxEntries < 1) {
      throw new RangeError(`maxEntries must be a positive integer, got ${options.maxEntries}`);
    }
    this.maxEntries = options.maxEntries;
    // Live blocks ≤ live entries ≤ maxEntries + 1 (eviction runs after every stored block): the table's
    // spare cell bits become key fingerprints.
    this.#blocks = new BlockTable(options.maxEntries + 2);
    this.#weights = { ...options.mediumWeights };
  }

  /**
   * For each podIds[i]: blocks[i] = number of consecutive blocks of `chain`, from block 0, that the pod holds
   * in any medium; weighted[i] = sum over those blocks of the best medium weight the pod holds each in.
   * Unknown pods get 0. Runs in O(matched blocks × entries per block); never allocates beyond the result.
   */
  matchPrefix(
    chain: BigUint64Array,
    podIds: readonly string[],
  ): { blocks: Uint32Array; weighted: Float64Array } {
    const n = podIds.length;
    const blocks = new Uint32Array(n);
    const weighted = new Float64Array(n);
    if (n === 0 || chain.length === 0 || this.#entries === 0) return { blocks, weighted };
    if (this.#at.length < this.#podHead.length) {
      this.#at = new Int32Array(this.#podHead.length).fill(-1);
      this.#sum = new Float64Array(this.#podHead.length);
      this.#lastW = new Float64Array(this.#podHead.length);
    }
    // State per pod number (not per position in podIds) so the inner loop does one lookup per entry.
    // at[p] = blocks matched so far for queried pods, -1 for pods not asked about.
    const at = this.#at;
    const sum = this.#sum;
    const lastW = this.#lastW;
    let alive = 0;
    for (let l = 0; l < n; l++) {
      const p = this.#podIdx.get(podIds[l]!);
      if (p === undefined || at[p] === 0) continue; // unknown, or listed twice
      at[p] = 0;
      sum[p] = 0;
      alive++;
    }
    const words = new Uint32Array(chain.buffer, chain.byteOffset, chain.length * 2);
    const table = this.#blocks;
    const items = this.#chunks.items;
    const mw = this.#mediumWeight;
    // Block-major walk: a pod advances when one of its entries is seen for block i while it holds 0..i−1
    // (at === i); a second medium of the same block only upgrades the weight. Pods not seen stay behind
    // and never match again, so no per-pod pass is needed per block.
    for (let i = 0; i < chain.length && alive > 0; i++) {
      const slot = table.find(words[2 * i]!, words[2 * i + 1]!);
      if (slot < 0) break;
      const next = i + 1;
      alive = 0;
      // A chunk is on one page: take it once.
      const first = 2 * table.chunk(slot);
      const page = items.page(first);
      const end = (first & items.mask) + 2 * table.len(slot);
      for (let k = first & items.mask; k < end; k += 2) {
        const pm = page[k]!;
        const p = pm >>> 8;
        const a = at[p]!;
        if (a === i) {
          const w = mw[pm & 0xff]!;
          at[p] = next;
          sum[p]! += w;
          lastW[p] = w;
          alive++;
        } else if (a === next) {
          const w = mw[pm & 0xff]!;
          if (w > lastW[p]!) {
            sum[p]! += w - lastW[p]!;
            lastW[p] = w;
          }
        }
      }
    }
    for (let l = 0; l < n; l++) {
      const p = this.#podIdx.get(podIds[l]!);
      if (p !== undefined && at[p] !== -1) {
        blocks[l] = at[p]!;
        weighted[l] = sum[p]!;
      }
    }
    for (let l = 0; l < n; l++) {
      const p = this.#podIdx.get(podIds[l]!);
      if (p !== undefined) at[p] = -1;
    }
    return { blocks, weighted };
  }

  /**
   * References the pod holds on one block in one medium (0 = none): what a mirror of the index writes, as an
   * absolute value, so replaying it is idempotent.
   */
  refCount(podId: string, medium: string, lo: number, hi: number): number {
    const p = this.#podIdx.get(podId);
    const m = this.#mediumIdx.get(medium);
    if (p === undefined || m === undefined) return 0;
    const slot = this.#blocks.find(lo, hi);
    if (slot < 0) return 0;
    const pm = (p << 8) | m;
    const off = this.#blocks.chunk(slot);
    const len = this.#blocks.len(slot);
    const items = this.#chunks.items;
    for (let k = 0; k < len; k++) if (items.get(2 * (off + k)) === pm) return this.#chunks.ref.get(off + k);
    return 0;
  }

  /** Whether the pod holds block (lo, hi) in any medium. */
  holds(podId: string, lo: number, hi: number): boolean {
    const p = this.#podIdx.get(podId);
    if (p === undefined) return false;
    const slot = this.#blocks.find(lo, hi);
    if (slot < 0) return false;
    const off = this.#blocks.chunk(slot);
    const len = this.#blocks.len(slot);
    const items = this.#chunks.items;
    for (let k = 0; k < len; k++) if (items.get(2 * (off + k)) >>> 8 === p) return true;
    return false;
  }

  /** Block-medium entries the pod holds. */
  podEntryCount(podId: string): number {
    const p = this.#podIdx.get(podId);
    return p === undefined ? 0 : this.#podCount[p]!;
  }

  /** Pods holding at least one block. */
  podIds(): string[] {
    const out: string[] = [];
    for (const [id, p] of this.#podIdx) if (this.#podCount[p]! > 0) out.push(id);
    return out;
  }

  /**
   * A copy of every entry the pod holds, most recently stored first: hashes as (lo, hi) word pairs, the
   * medium name and the reference count of each. O(the pod's entries); for re-synchronising a mirror.
   */
  podEntries(podId: string): { words: Uint32Array; media: string[]; refs: Uint16Array } {
    const p = this.#podIdx.get(podId);
    const n = p === undefined ? 0 : this.#podCount[p]!;
    const words = new Uint32Array(2 * n);
    const media: string[] = new Array(n);
    const refs = new Uint16Array(n);
    if (p === undefined) return { words, media, refs };
    const names: string[] = [];
    for (const [name, m] of this.#mediumIdx) names[m] = name;
    const blocks = this.#blocks;
    const ch = this.#chunks;
    let i = 0;
    for (let node = this.#podHead[p]!; node !== NIL && i < n; node = this.#nodeNext(node), i++) {
      const slot = this.#nodeBlock(node);
      words[2 * i] = blocks.lo(slot);
      words[2 * i + 1] = blocks.hi(slot);
      const off = blocks.chunk(slot);
      let k = 0;
      while (ch.items.get(2 * (off + k) + 1) !== node) k++;
      // Media past MAX_MEDIA share the last index and have no single name; "" marks them.
      media[i] = names[ch.items.get(2 * (off + k)) & 0xff] ?? "";
      refs[i] = ch.ref.get(off + k);
    }
    return { words, media, refs };
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
    return this.#blocks.bytes + this.#chunks.capacity * 10 + (this.#nodes.length << NODE_BITS) * 12;
  }

  // ---- write API: used only by src/kv-events ----

  /**
   * Records that `podId` holds blocks words[2i], words[2i+1] (lo, hi) for i < count, in `medium`.
   * Storing a block twice counts it twice (vLLM can cache identical content in two physical blocks).
   */
  store(podId: string, medium: string, words: Uint32Array, count: number): void {
    const pm = (this.#pod(podId) << 8) | this.#medium(medium);
    for (let i = 0; i < count; i++) {
      this.#storeOne(pm, words[2 * i]!, words[2 * i + 1]!);
      // Per block, not per event: the node arrays are sized to the cap, and one event may be huge.
      if (this.#entries > this.maxEntries) this.#evict();
    }
  }

  /** Drops one reference of each block for that pod and medium only (a CPU copy outlives the GPU copy). */
  remove(podId: string, medium: string, words: Uint32Array, count: number): void {
    const p = this.#podIdx.get(podId);
    if (p === undefined) return;
    const pm = (p << 8) | this.#medium(medium);
    for (let i = 0; i < count; i++) this.#removeOne(pm, words[2 * i]!, words[2 * i + 1]!);
  }

  #storeOne(pm: number, lo: number, hi: number): void {
    const blocks = this.#blocks;
    const slot = blocks.upsert(lo, hi);
    const len = blocks.len(slot);
    let off = blocks.chunk(slot);
    const ch = this.#chunks;
    if (len > 0) {
      const items = ch.items.page(2 * off);
      const base = (2 * off) & ch.items.mask;
      for (let k = 0; k < len; k++) {
        if (items[base + 2 * k] === pm) {
          // Saturated counts stay until the pod is cleared or the block evicted: harmless, and 65k copies is absurd.
          const ref = ch.ref.get(off + k);
          if (ref < MAX_REF) ch.ref.set(off + k, ref + 1);
          return;
        }
      }
    }
    if (off === NIL) {
      off = ch.alloc(0);
      blocks.setChunk(slot, off);
    } else if (len === 1 << blocks.cls(slot)) {
      const cls = blocks.cls(slot);
      const grown = ch.alloc(cls + 1);
      ch.move(off, grown, len);
      ch.free(off, cls);
      off = grown;
      blocks.setChunk(slot, off);
      blocks.setCls(slot, cls + 1);
    }
    const p = pm >>> 8;
    const node = this.#allocNode();
    const ph = this.#podHead[p]!;
    const np = this.#nodes[node >>> NODE_BITS]!;
    const nq = (node & NODE_MASK) * NODE_WORDS;
    np[nq] = slot;
    np[nq + N_PREV] = NIL;
    np[nq + N_NEXT] = ph;
    if (ph !== NIL) this.#nodes[ph >>> NODE_BITS]![(ph & NODE_MASK) * NODE_WORDS + N_PREV] = node;
    else this.#podTail[p] = node;
    this.#podHead[p] = node;
    ch.items.set(2 * (off + len), pm);
    ch.items.set(2 * (off + len) + 1, node);
    ch.ref.set(off + len, 1);
    blocks.setLen(slot, len + 1);
    if (this.#podCount[p]!++ === 0) this.#podsWithEntries++;
    this.#entries++;
  }

  #removeOne(pm: number, lo: number, hi: number): void {
    const slot = this.#blocks.find(lo, hi);
    if (slot < 0) return;
    const off = this.#blocks.chunk(slot);
    const len = this.#blocks.len(slot);
    const ch = this.#chunks;
    for (let k = 0; k < len; k++) {
      if (ch.items.get(2 * (off + k)) !== pm) continue;
      const ref = ch.ref.get(off + k);
      if (ref > 1 && ref < MAX_REF) ch.ref.set(off + k, ref - 1);
      else if (ref === 1) this.#dropItem(slot, k);
      return;
    }
  }

  /** Removes entry k of a block (swap with the last), unlinking its node; frees an emptied block. */
  #dropItem(slot: number, k: number): void {
    const blocks = this.#blocks;
    const off = blocks.chunk(slot);
    const last = blocks.len(slot) - 1;
    const ch = this.#chunks;
    const items = ch.items.page(2 * off);
    const base = (2 * off) & ch.items.mask;
    this.#unlinkNode(items[base + 2 * k + 1]!, items[base + 2 * k]! >>> 8);
    if (k !== last) {
      items[base + 2 * k] = items[base + 2 * last]!;
      items[base + 2 * k + 1] = items[base + 2 * last + 1]!;
      ch.ref.set(off + k, ch.ref.get(off + last));
    }
    blocks.setLen(slot, last);
    this.#entries--;
    if (last === 0) {
      ch.free(off, blocks.cls(slot));
      this.#blocks.free(slot);
    }
  }

  #unlinkNode(node: number, p: number): void {
    const np = this.#nodes[node >>> NODE_BITS]!;
    const nq = (node & NODE_MASK) * NODE_WORDS;
    const prev = np[nq + N_PREV]!;
    const next = np[nq + N_NEXT]!;
    if (prev !== NIL) this.#nodes[prev >>> NODE_BITS]![(prev & NODE_MASK) * NODE_WORDS + N_NEXT] = next;
    else this.#podHead[p] = next;
    if (next !== NIL) this.#nodes[next >>> NODE_BITS]![(next & NODE_MASK) * NODE_WORDS + N_PREV] = prev;
    else this.#podTail[p] = prev;
    if (--this.#podCount[p]! === 0) this.#podsWithEntries--;
    np[nq + N_NEXT] = this.#nFree;
    this.#nFree = node;
  }

  #clearPodIdx(p: number): void {
    for (let node = this.#podHead[p]!; node !== NIL; ) {
      const next = this.#nodeNext(node);
      this.#dropEntry(node);
      node = next;
    }
  }

  /**
   * Back under the cap, fairly: repeatedly take the pod holding the most entries and drop its oldest entries
   * until it is down to the next largest pod's count (or the target is met). With one pod this is plain LRU
   * by store time; with many it evens the pods out, so a flood from one pod only ever evicts that pod's
   * entries while the others stay within their share. Large caps evict down to 1/1024 below the cap, so the
   * pass over the pods runs about once per that many stores rather than once per stored block (caps below
   * 1,024 entries evict exactly down to the cap).
   */
  #evict(): void {
    const target = this.maxEntries - (this.maxEntries >>> 10);
    while (this.#entries > target) {
      let big = -1;
      let bigCount = 0;
      let second = 0;
      for (let p = 0; p < this.#podCount.length; p++) {
        const c = this.#podCount[p]!;
        if (c > bigCount) {
          second = bigCount;
          bigCount = c;
          big = p;
        } else if (c > second) second = c;
      }
      if (big < 0) return;
      if (bigCount > second) {
        let n = Math.min(this.#entries - target, bigCount - second);
        while (n-- > 0) this.#dropNode(this.#podTail[big]!);
        continue;
      }
      // Several pods tied for the most: one entry off each in the same pass (pods taking turns one entry
      // per pass would cost a pass per evicted entry when the pool is balanced).
      for (let p = 0; p < this.#podCount.length && this.#entries > target; p++)
        if (this.#podCount[p] === bigCount) this.#dropNode(this.#podTail[p]!);
    }
  }

  /** Evicts the entry of one node (a pod's copy of one block, whatever its reference count). */
  #dropNode(node: number): void {
    this.#dropEntry(node);
    this.#evictions++;
  }

  /** Drops the entry a node stands for (finding it in its block's chunk). */
  #dropEntry(node: number): void {
    const slot = this.#nodeBlock(node);
    const off = this.#blocks.chunk(slot);
    const items = this.#chunks.items.page(2 * off);
    const base = (2 * off) & this.#chunks.items.mask;
    let k = 0;
    while (items[base + 2 * k + 1] !== node) k++;
    this.#dropItem(slot, k);
  }

  #allocNode(): number {
    if (this.#nFree !== NIL) {
      const n = this.#nFree;
      this.#nFree = this.#nodeNext(n);
      return n;
    }
    // One page more when full (live nodes ≤ maxEntries + 1: eviction runs after every block).
    if (this.#nUsed === this.#nodes.length << NODE_BITS)
      this.#nodes.push(new Uint32Array(NODE_WORDS << NODE_BITS));
    return this.#nUsed++;
  }

  #nodeBlock(node: number): number {
    return this.#nodes[node >>> NODE_BITS]![(node & NODE_MASK) * NODE_WORDS]!;
  }

  #nodeNext(node: number): number {
    return this.#nodes[node >>> NODE_BITS]![(node & NODE_MASK) * NODE_WORDS + N_NEXT]!;
  }

  #pod(podId: string): number {
    let p = this.#podIdx.get(podId);
    if (p !== undefined) return p;
    p = this.#podFree.pop() ?? this.#podHead.length;
    if (p > 0xffffff) throw new RangeError("more than 16M distinct pods");
    this.#podIdx.set(podId, p);
    this.#podHead[p] = NIL;
    this.#podTail[p] = NIL;
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
}
