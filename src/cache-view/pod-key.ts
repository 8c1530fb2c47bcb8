// The one pod-key rule. A vLLM pod names itself in its KV-event topic (`kv@<id>@<model>`) either by
// "ip:port" (connect mode, data-parallel ranks distinct) or by its bare IP (bind mode, the reference
// topic). So an endpoint is looked up under its address first, else under its IP. Every place that maps a
// pool endpoint to a read-model id goes through `podKeyOf`.

/** An endpoint as the rule needs it (endpoints/endpoint.ts `Endpoint` fits). */
export interface PodAddress {
  /** "ip:port" ("[v6]:port" for IPv6). */
  readonly address: string;
  /** The bare IP, without brackets. */
  readonly ip: string;
}

/** The id `known` answers to for this endpoint: its address, else its bare IP, else null. */
export function podKeyOf(known: (podId: string) => boolean, pod: PodAddress): string | null {
  if (known(pod.address)) return pod.address;
  if (known(pod.ip)) return pod.ip;
  return null;
}

/** An "ip:port" or "[v6]:port" address as a PodAddress (for addresses that come from a response header). */
export function podAddress(address: string): PodAddress {
  const ip = address.startsWith("[") ? address.slice(1, address.indexOf("]")) : address.split(":")[0]!;
  return { address, ip };
}
