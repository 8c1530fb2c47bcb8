// A static pool of `n` endpoints with a fresh, plausible vLLM load reading each (as after the first scrape).
import { EndpointStore } from "../../src/endpoints/endpoint-store.js";
import { parseEndpointList } from "../../src/endpoints/parse-endpoints.js";

export function staticPool(addresses: readonly string[]): EndpointStore {
  const endpoints = new EndpointStore({});
  endpoints.replaceAll(parseEndpointList(addresses));
  for (const [i, a] of addresses.entries())
    endpoints.recordMetrics(a, {
      waiting: i % 3,
      running: 2,
      kvCacheUsage: 0.2,
      blockSize: 64,
      numGpuBlocks: 4802,
      prefixCachingHashAlgo: null,
      lora: null,
    });
  return endpoints;
}
