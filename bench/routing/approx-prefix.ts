// The approximate prefix policy of the Gateway API Inference Extension (GIE `prefix-cache-scorer`),
// re-implemented for comparison: the request body's characters are cut into blocks of
// blockSizeTokens × 4 characters (GIE default 16 × 4 = 64), at most 256 blocks, chain-hashed (the model name
// seeds the chain); every pod has an LRU of the block hashes *routed* to it (31,250 per pod), updated when a
// request is routed, never told what the pod really cached or evicted. Score = consecutive matching blocks
// from block 0 / blocks in the request. It plugs into kvpick's own scheduler as a scorer plugin.
import { z } from "zod";
import { definePlugin, type PluginFactory } from "../../src/scheduling/registry.js";
import type { Scorer, SchedulingRequest } from "../../src/scheduling/types.js";

export const APPROX_DEFAULTS = Object.freeze({
  blockChars: 64,
  maxBlocks: 256,
  lruCapacityPerServer: 31_250,
});

/**
 * Chained hashes of the first `maxBlocks` full blocks of `text` (a trailing partial block is ignored, as
 * GIE does). Keys are < 2^53 numbers built from two independent 32-bit lanes (53 bits kept): a collision is
 * ~2^-53 per pair, and these are GIE-style routing keys, not vLLM hashes.
 */
export function approxBlockKeys(
  text: string,
  model: string,
  blockChars = APPROX_DEFAULTS.blockChars,
  maxBlocks = APPROX_DEFAULTS.maxBlocks,
): Float64Array {
  const n = Math.min(maxBlocks, Math.floor(text.length / blockChars));
  const out = new Float64Array(n);
  let a = 0x9e3779b9;
  let b = 0x85ebca6b;
  for (let i = 0; i < model.length; i++) {
    a = Math.imul(a ^ model.charCodeAt(i), 0x01000193);
    b = Math.imul(b ^ model.charCodeAt(i), 0x5bd1e995);
  }
  for (let k = 0; k < n; k++) {
    // Each block's hash starts from the previous block's (the chain), then mixes its characters.
    const base = k * blockChars;
    for (let i = 0; i < blockChars; i++) {
      const c = text.charCodeAt(base + i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul((b ^ c) + (b >>> 13), 0x5bd1e995);
    }
    a ^= a >>> 16;
    b ^= b >>> 15;
    out[k] = (a >>> 0) * 2 ** 21 + ((b >>> 0) & 0x1fffff);
  }
  return out;
}

/** GIE's per-server LRU of routed block hashes. Map insertion order = recency (oldest first). */
export class RoutedBlockLru {
  readonly #pods: Map<number, true>[];
  readonly capacity: number;

  constructor(pods: number, capacity: number = APPROX_DEFAULTS.lruCapacityPerServer) {
    this.capacity = capacity;
    this.#pods = Array.from({ length: pods }, () => new Map<number, true>());
  }

  /** Consecutive blocks of `keys` from block 0 present on `pod`. */
  match(pod: number, keys: Float64Array): number {
    const m = this.#pods[pod]!;
    let i = 0;
    while (i < keys.length && m.has(keys[i]!)) i++;
    return i;
  }

  /** The request was routed to `pod`: its blocks become that pod's most recent. */
  add(pod: number, keys: Float64Array): void {
    const m = this.#pods[pod]!;
    for (const k of keys) {
      m.delete(k);
      m.set(k, true);
    }
    while (m.size > this.capacity) m.delete(m.keys().next().value!);
  }
}

/** A scheduling request carrying its approximate keys (the benchmark attaches them). */
export interface ApproxRequest extends SchedulingRequest {
  readonly approxKeys: Float64Array;
}

/** Candidates' pod numbers: the benchmark names endpoints 10.0.0.<pod+1>:8000. */
export const podOfAddress = (address: string): number =>
  Number(address.slice(address.lastIndexOf(".") + 1, address.indexOf(":"))) - 1;

/** `approx-prefix-cache-scorer`: matched / total blocks from the routed-block LRU. */
export function approxPrefixScorerPlugin(lru: RoutedBlockLru): PluginFactory {
  return definePlugin({
    type: "approx-prefix-cache-scorer",
    role: "scorer",
    params: z.strictObject({}),
    create: (name): Scorer => ({
      type: "approx-prefix-cache-scorer",
      name,
      role: "scorer",
      score(cycle, candidates) {
        const keys = (cycle.request as ApproxRequest).approxKeys;
        const out = new Float64Array(candidates.length);
        if (keys.length === 0) return out;
        candidates.forEach((e, i) => {
          out[i] = lru.match(podOfAddress(e.address), keys) / keys.length;
        });
        return out;
      },
    }),
  });
}
