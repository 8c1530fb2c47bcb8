// One decoded, in-order batch → the block index: stores and removals per medium, AllBlocksCleared, the
// hash-configuration check, token keys (token-keys.ts) and the pod's event counters.
//
// Ordinary batches are applied synchronously (a reader never sees half of one). A huge batch (vLLM can send
// one BlockStored with a whole long prompt, a replay ring can be large, a hostile publisher can send a
// million blocks) would hold the event loop for up to a second: past SYNC_BLOCKS blocks the applier works in
// slices, one per event-loop turn within the budget every huge piece of KV-event work shares (loop-slicer.ts:
// 1 ms a turn, pods in turn), and every later batch of that pod waits behind it so the pod's order is kept;
// other pods are not held. Clearing the pod drops what waits.
import type { BlockIndex } from "../kv-index/block-index.js";
import type { KvEventsRecorder } from "./kv-events-recorder.js";
import { type LoopSlicer, loopSlicer } from "./loop-slicer.js";
import type { BlockRemovedEvent, BlockStoredEvent, KvEvent, KvEventBatch } from "./decode.js";
import type { HashCheck } from "./hash-check.js";
import type { IndexMirror } from "./index-mirror.js";
import type { PodState } from "./pod-state.js";
import type { TokenKeys } from "./token-keys.js";

/** Batches with at most this many blocks are applied at once (well under a millisecond with token keys). */
const SYNC_BLOCKS = 2048;
/** Blocks applied between two clock reads while slicing (~0.1 ms). */
const CHUNK_BLOCKS = 256;

/** A pod's batches waiting to be applied, the first one partly applied (event `ev`, from block `block`). */
interface PodQueue {
  state: PodState;
  batches: KvEventBatch[];
  ev: number;
  block: number;
}

export class BatchApplier {
  readonly #index: BlockIndex;
  readonly #recorder: KvEventsRecorder;
  readonly #hashCheck: HashCheck;
  readonly #mirror: IndexMirror | null;
  readonly #keys: TokenKeys;
  readonly #queues = new Map<string, PodQueue>();
  readonly #slicer: LoopSlicer;
  /** Whether a slicer task is under way (it ends once no pod has batches waiting). */
  #slicing = false;
  #idle: (() => void)[] = [];

  constructor(
    index: BlockIndex,
    recorder: KvEventsRecorder,
    hashCheck: HashCheck,
    mirror: IndexMirror | null = null,
    slicer: LoopSlicer = loopSlicer,
  ) {
    this.#index = index;
    this.#slicer = slicer;
    this.#recorder = recorder;
    this.#hashCheck = hashCheck;
    this.#mirror = mirror;
    this.#keys = hashCheck.createTokenKeys(index);
  }

  /** The token-keyed indexing (stats, tests). */
  get tokenKeys(): TokenKeys {
    return this.#keys;
  }

  /** Forgets every block of the pod, here and in the mirror: the one way the ingest clears a pod. */
  clearPod(pod: string): void {
    this.#queues.delete(pod); // batches from before the clear must not land after it
    this.#index.clearPod(pod);
    this.#keys.cleared(pod);
    this.#mirror?.podCleared(pod);
    if (this.#queues.size === 0) this.#wake();
  }

  /** Clears the pod from inside a batch: the rest of that batch, and what waits behind it, still applies. */
  #clearInBatch(pod: string): void {
    const q = this.#queues.get(pod);
    this.clearPod(pod);
    if (q !== undefined) this.#queues.set(pod, q);
  }

  /** Batches waiting behind a huge one, over all pods. */
  get pending(): number {
    let n = 0;
    for (const q of this.#queues.values()) n += q.batches.length;
    return n;
  }

  /** Resolves once no batch waits (at once when none does). */
  idle(): Promise<void> {
    if (this.#queues.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  apply(state: PodState, batch: KvEventBatch): void {
    const m = this.#recorder;
    const pod = state.podId;
    if (batch.unknownTags > 0) m.unknown(pod, "tag", batch.unknownTags);
    if (batch.extraFields > 0) m.unknown(pod, "field", batch.extraFields);
    const queued = this.#queues.get(pod);
    if (queued !== undefined) {
      queued.batches.push(batch);
      return;
    }
    if (blocksOf(batch) > SYNC_BLOCKS) {
      this.#queues.set(pod, { state, batches: [batch], ev: 0, block: 0 });
      this.#schedule();
      return;
    }
    const started = performance.now();
    for (const ev of batch.events) this.#event(pod, state, ev, 0, blockCount(ev));
    m.applySeconds((performance.now() - started) / 1000);
  }

  #schedule(): void {
    if (this.#slicing) return;
    this.#slicing = true;
    this.#slicer
      .run((deadline) => this.#slice(deadline))
      .then(
        () => {
          this.#slicing = false;
          if (this.#queues.size > 0)
            this.#schedule(); // a batch came in as the last slice ended
          else this.#wake();
        },
        (err: unknown) => {
          // A bug of ours: surfaces as an uncaught exception, as it did when the slice ran in setImmediate.
          this.#slicing = false;
          setImmediate(() => {
            throw err;
          });
        },
      );
  }

  /**
   * One slice: the waiting pods' blocks until `deadline`, the first pod first, which then goes to the back (a
   * pod with a huge batch does not hold another's for long). True once no pod has batches waiting.
   */
  #slice(deadline: number): boolean {
    for (const [pod, q] of this.#queues) {
      const started = performance.now();
      while (q.batches.length > 0) {
        const batch = q.batches[0]!;
        if (q.ev >= batch.events.length) {
          q.batches.shift();
          q.ev = 0;
          q.block = 0;
          continue;
        }
        const ev = batch.events[q.ev]!;
        const total = blockCount(ev);
        const to = Math.min(total, q.block + CHUNK_BLOCKS);
        this.#event(pod, q.state, ev, q.block, to);
        if (!this.#queues.has(pod)) break; // the event cleared the pod (AllBlocksCleared)
        if (to >= total) {
          q.ev++;
          q.block = 0;
        } else q.block = to;
        if (performance.now() >= deadline) break;
      }
      const now = performance.now();
      this.#recorder.applySeconds((now - started) / 1000);
      if (this.#queues.get(pod) === q) {
        this.#queues.delete(pod);
        if (q.batches.length > 0) this.#queues.set(pod, q); // to the back
      }
      if (now >= deadline) break;
    }
    return this.#queues.size === 0;
  }

  #wake(): void {
    const waiting = this.#idle;
    this.#idle = [];
    for (const resolve of waiting) resolve();
  }

  /** Applies blocks [from, to) of one event (every block of it unless it is being sliced). */
  #event(pod: string, state: PodState, ev: KvEvent, from: number, to: number): void {
    if (ev.type === "AllBlocksCleared") {
      this.#clearInBatch(pod);
      state.accuracy.clearLoss(); // a reset is a full, known state again
      state.recorder.applied("AllBlocksCleared");
      return;
    }
    if (!indexable(ev, state.fullAttentionGroups)) {
      if (from === 0) this.#recorder.unknown(pod, "group");
      return;
    }
    // Before v0.10.2 events carry no medium: only the GPU pool published.
    const medium = ev.medium ?? "GPU";
    const part = from === 0 && to === ev.blockHashes.length ? ev : sliceEvent(ev, from, to);
    if (part.type === "BlockStored") this.#stored(pod, state, medium, part, from === 0);
    else this.#removed(pod, state, medium, part, from === 0);
  }

  #stored(pod: string, state: PodState, medium: string, ev: BlockStoredEvent, first: boolean): void {
    const keys = this.#keys;
    if (first && this.#hashCheck.check(pod, ev)) {
      const suspect = this.#hashCheck.suspect(pod);
      // auto: a pod whose hashes differ from kvpick's is keyed by tokens from now on; its engine-keyed
      // entries can never match a request, so they go.
      if (keys.checked(pod, suspect)) this.#clearInBatch(pod);
      state.accuracy.hashSuspect(suspect && !keys.usesTokens(pod));
    }
    if (keys.usesTokens(pod)) {
      const k = keys.stored(pod, ev);
      if (k !== null) this.#store(pod, medium, k.words, k.count);
      keys.bound(pod);
    } else {
      const n = ev.blockHashes.length;
      this.#store(pod, medium, new Uint32Array(ev.blockHashes.buffer, ev.blockHashes.byteOffset, 2 * n), n);
    }
    if (first) state.recorder.applied("BlockStored");
  }

  #removed(pod: string, state: PodState, medium: string, ev: BlockRemovedEvent, first: boolean): void {
    const keys = this.#keys;
    if (keys.usesTokens(pod)) {
      const k = keys.removed(pod, ev);
      this.#index.remove(pod, medium, k.words, k.count);
      this.#mirror?.touched(pod, medium, k.words, k.count);
      keys.afterRemove(pod, ev);
    } else {
      const n = ev.blockHashes.length;
      const words = new Uint32Array(ev.blockHashes.buffer, ev.blockHashes.byteOffset, 2 * n);
      this.#index.remove(pod, medium, words, n);
      this.#mirror?.touched(pod, medium, words, n);
    }
    if (first) state.recorder.applied("BlockRemoved");
  }

  #store(pod: string, medium: string, words: Uint32Array, count: number): void {
    this.#index.store(pod, medium, words, count);
    this.#mirror?.touched(pod, medium, words, count);
  }
}

function blockCount(ev: KvEvent): number {
  return ev.type === "AllBlocksCleared" ? 1 : Math.max(1, ev.blockHashes.length);
}

function blocksOf(batch: KvEventBatch): number {
  let n = 0;
  for (const ev of batch.events) n += blockCount(ev);
  return n;
}

/**
 * Blocks [from, to) of an event as an event of their own: a stored slice's parent is the block before it
 * (which the previous slice stored, and mapped when the pod is token-keyed).
 */
function sliceEvent(
  ev: BlockStoredEvent | BlockRemovedEvent,
  from: number,
  to: number,
): BlockStoredEvent | BlockRemovedEvent {
  const blockHashes = ev.blockHashes.subarray(from, to);
  if (ev.type === "BlockRemoved") return { ...ev, blockHashes };
  const n = ev.blockHashes.length;
  const bs = n === 0 ? 0 : Math.floor(ev.tokenIds.length / n);
  return {
    ...ev,
    blockHashes,
    parentBlockHash: from === 0 ? ev.parentBlockHash : ev.blockHashes[from - 1]!,
    tokenIds: bs * n === ev.tokenIds.length ? ev.tokenIds.subarray(from * bs, to * bs) : ev.tokenIds,
    extraKeys: ev.extraKeys === null ? null : ev.extraKeys.slice(from, to),
  };
}

/**
 * Hybrid models publish one event per KV-cache group. Only full-attention groups describe a reusable
 * prefix the way kvpick's chain does: index BlockStored events whose spec kind (when sent) is full
 * attention / MLA, remembering their group so the matching BlockRemoved (which carries no spec kind) is
 * indexed too; without a spec kind, only group 0 (single-group models always send 0 or nothing).
 */
function indexable(ev: Exclude<KvEvent, { type: "AllBlocksCleared" }>, fullGroups: Set<number>): boolean {
  if (ev.type === "BlockStored" && ev.kvCacheSpecKind !== null) {
    const full = ev.kvCacheSpecKind === "full_attention" || ev.kvCacheSpecKind.startsWith("mla");
    if (full && ev.groupIdx !== null && fullGroups.size < 64) fullGroups.add(ev.groupIdx);
    return full;
  }
  return ev.groupIdx === null || ev.groupIdx === 0 || fullGroups.has(ev.groupIdx);
}
