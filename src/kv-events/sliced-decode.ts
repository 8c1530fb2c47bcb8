// The decode of one huge KV-event payload spread over event-loop turns: a 1,000,000-block BlockStored is a
// ~10 MB message whose decode held the loop ~55 ms in one go (issue 16). Same steps as `decodeBatch`
// (decode.ts), so the same events, counts and DecodeErrors; the batch still reaches the index only once it
// decoded in full, so bad bytes change nothing.
import { decodeSteps, type KvEventBatch } from "./decode.js";

/** A slice runs until it has taken this long, then yields to the loop (setImmediate). */
const SLICE_MS = 2;

/** Payloads at least this large are decoded in slices by the ingest (~100,000 block hashes). */
export const SLICED_DECODE_BYTES = 1 << 20;

/**
 * Decodes like `decodeBatch`, yielding to the event loop between slices of ~SLICE_MS; rejects with the
 * DecodeError `decodeBatch` would throw. `cancelled` is checked between slices: when it turns true the
 * decode stops and resolves null (the pod left, the ingest closes).
 */
export async function decodeBatchSliced(
  payload: Uint8Array,
  cancelled: () => boolean = () => false,
  sliceMs = SLICE_MS,
): Promise<KvEventBatch | null> {
  const steps = decodeSteps(payload);
  for (;;) {
    const until = performance.now() + sliceMs;
    for (;;) {
      const step = steps.next();
      if (step.done === true) return step.value;
      if (performance.now() >= until) break;
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (cancelled()) return null;
  }
}
