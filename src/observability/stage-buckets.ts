// Latency buckets shared by the per-stage histograms: a warm request's stage is tens of µs; a cold
// 32k-token prompt's tens of ms.
export const STAGE_BUCKETS = [1e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 0.5, 2];
