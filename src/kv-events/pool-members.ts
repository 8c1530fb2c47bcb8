// Which KV-event pod ids belong to the current pool, for bind mode: a topic names a pod as "ip" (the
// reference topic kv@<pod-ip>@<model>) or "ip:port" (llm-d, data-parallel ranks apart), and only pool
// members may write the index — otherwise anyone reaching the bound port could poison it. O(1) per message.
import type { PodAddress } from "../cache-view/pod-key.js";

export class PoolMembers {
  readonly #addresses = new Set<string>();
  readonly #ips = new Map<string, number>(); // ip → endpoints on it (data-parallel ranks share an IP)

  add(m: PodAddress): void {
    if (this.#addresses.has(m.address)) return;
    this.#addresses.add(m.address);
    this.#ips.set(m.ip, (this.#ips.get(m.ip) ?? 0) + 1);
  }

  remove(m: PodAddress): void {
    if (!this.#addresses.delete(m.address)) return;
    const n = (this.#ips.get(m.ip) ?? 1) - 1;
    if (n > 0) this.#ips.set(m.ip, n);
    else this.#ips.delete(m.ip);
  }

  /** Endpoints of the pool on this IP (data-parallel ranks of one pod share it). */
  onIp(ip: string): number {
    return this.#ips.get(ip) ?? 0;
  }

  /** Whether a topic's pod id names a member: its address ("ip:port") or its IP. */
  has(podId: string): boolean {
    return this.#addresses.has(podId) || this.#ips.has(podId);
  }
}
