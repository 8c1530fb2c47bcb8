// A pod → the endpoints it contributes to the pool. One endpoint per target port (data-parallel ranks, GIE's
// `<pod>-rank-<i>`); the endpoint's `name` is "namespace/pod" (or "namespace/pod-rank-i" with several ports)
// so the "Request handled" log names it.
//
// Membership vs. readiness: a pod that is Running with an IP is in the store (its KV-event subscription and
// index entries stay: a readiness blip does not empty its cache); it is a scheduling *candidate* (`ready`)
// only while its Ready condition is True and it is not terminating. A terminating, pending, failed or
// IP-less pod contributes nothing (its index entries are cleared).
import { isIP } from "node:net";
import type { EndpointSpec } from "./endpoint.js";
import type { KubeObject } from "./kube-api.js";

interface PodCondition {
  type?: string;
  status?: string;
}

export function podKey(pod: KubeObject): string {
  return `${pod.metadata?.namespace ?? ""}/${pod.metadata?.name ?? ""}`;
}

/** Running, Ready, has an IP and is not being deleted. */
export function podIsCandidate(pod: KubeObject): boolean {
  return podIsMember(pod) && podReady(pod) && !terminating(pod);
}

export function podEndpoints(pod: KubeObject, targetPorts: readonly number[]): EndpointSpec[] {
  if (!podIsMember(pod) || terminating(pod)) return [];
  const ip = String(pod.status?.podIP).toLowerCase();
  const ready = podReady(pod);
  const key = podKey(pod);
  const several = targetPorts.length > 1;
  return targetPorts.map((port, rank) => ({
    address: isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`,
    ip,
    port,
    name: several ? `${key}-rank-${rank}` : key,
    ready,
    pod: key,
    rank,
  }));
}

function podIsMember(pod: KubeObject): boolean {
  const ip = pod.status?.podIP;
  return pod.status?.phase === "Running" && typeof ip === "string" && isIP(ip) !== 0;
}

function podReady(pod: KubeObject): boolean {
  const conditions = (pod.status?.conditions ?? []) as PodCondition[];
  return conditions.some((c) => c.type === "Ready" && c.status === "True");
}

function terminating(pod: KubeObject): boolean {
  const ts = pod.metadata?.deletionTimestamp;
  return ts !== undefined && ts !== null && ts !== "";
}
