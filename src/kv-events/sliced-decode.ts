// The decode of one huge KV-event payload spread over event-loop turns: a 1,000,000-block BlockStored is a
// ~10 MB message whose decode held the loop ~55 ms in one go (issue 16). Same steps as `decodeBatch`
// (decode.ts), so the same events, counts and DecodeErrors; the batch still reaches the index only once it
// decoded in full, so bad bytes change nothing. The slices share the loop's per-turn budget with the
// applier's (loop-slicer.ts).
import { decodeSteps, type KvEventBatch } from "./decode.js";
import { type LoopSlicer, loopSlicer } from "./loop-slicer.js";

/** Payloads at least this large are decoded in slices (live and replayed; ~100,000 block hashes). */
export const SLICED_DECODE_BYTES = 1 << 20;

/**
 * Decodes like `decodeBatch`, a slice per event-loop turn (never in the calling turn); rejects with the
 * DecodeError `decodeBatch` would throw. `cancelled` is checked before every slice: when it turns true the
 * decode stops and resolves null (the pod left, the ingest closes, the replay was aborted).
 */
export async function decodeBatchSliced(
  payload: Uint8Array,
  cancelled: () => boolean = () => false,
  slicer: LoopSlicer = loopSlicer,
): Promise<KvEventBatch | null> {
  const steps = decodeSteps(payload);
  let batch: KvEventBatch | null = null;
  await slicer.run((deadline) => {
    if (cancelled()) return true;
    for (;;) {
      const step = steps.next();
      if (step.done === true) {
        batch = step.value;
        return true;
      }
      if (performance.now() >= deadline) return false;
    }
  });
  return batch;
}
