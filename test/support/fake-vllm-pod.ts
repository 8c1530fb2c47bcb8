// A stand-in for a vLLM pod's HTTP side in request-path tests: serves `/metrics` in vLLM's Prometheus
// names with settable load. Listens on its own loopback IP (127.0.0.x) so several pods can be told apart
// by IP, as pods are in a cluster and as the reference topic `kv@<pod-ip>@<model>` names them.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeLoad {
  waiting: number;
  running: number;
  kvCacheUsage: number;
}

export class FakeVllmPod {
  readonly ip: string;
  load: FakeLoad = { waiting: 0, running: 0, kvCacheUsage: 0.1 };
  blockSize = 64;
  scrapes = 0;
  readonly #server: Server;
  #port = 0;

  constructor(ip: string) {
    this.ip = ip;
    this.#server = createServer((req, res) => {
      if (req.url === "/metrics") {
        this.scrapes++;
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
        res.end(this.page());
        return;
      }
      res.writeHead(404).end();
    });
  }

  get address(): string {
    return `${this.ip}:${this.#port}`;
  }

  /** `port` 0 = any; a fixed one gives several pods the same port, as an InferencePool's targetPort does. */
  async start(port = 0): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(port, this.ip, () => {
        this.#server.off("error", reject);
        resolve();
      });
    });
    this.#port = (this.#server.address() as AddressInfo).port;
    return this;
  }

  page(): string {
    const l = `model_name="Qwen3-32B",engine="0"`;
    return [
      "# TYPE vllm:num_requests_waiting gauge",
      `vllm:num_requests_waiting{${l}} ${this.load.waiting}`,
      "# TYPE vllm:num_requests_running gauge",
      `vllm:num_requests_running{${l}} ${this.load.running}`,
      "# TYPE vllm:kv_cache_usage_perc gauge",
      `vllm:kv_cache_usage_perc{${l}} ${this.load.kvCacheUsage}`,
      "# TYPE vllm:cache_config_info gauge",
      `vllm:cache_config_info{block_size="${this.blockSize}",prefix_caching_hash_algo="sha256_cbor_64bit",enable_prefix_caching="True",num_gpu_blocks="4802",${l}} 1`,
      "",
    ].join("\n");
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
