// The InferencePool resource in its two published shapes, reduced to what discovery needs: which pods
// (selector) and which ports on them (one endpoint per port = one data-parallel rank).
//   inference.networking.k8s.io/v1:           spec.selector.matchLabels (+ matchExpressions), spec.targetPorts[].number (1..8)
//   inference.networking.x-k8s.io/v1alpha2:   spec.selector (a plain label map), spec.targetPortNumber
import type { KubeObject } from "./kube-api.js";
import { type Requirement, selectorFromObject, selectorString } from "./kube-label-selector.js";

export const POOL_GROUP_V1 = "inference.networking.k8s.io";
export const POOL_GROUP_V1ALPHA2 = "inference.networking.x-k8s.io";

/** API group → the version kvpick reads. */
export const POOL_VERSIONS: Readonly<Record<string, string>> = {
  [POOL_GROUP_V1]: "v1",
  [POOL_GROUP_V1ALPHA2]: "v1alpha2",
};

export interface PoolSpec {
  readonly selector: readonly Requirement[];
  /** Canonical `labelSelector` text: equal selectors give equal strings. */
  readonly selectorText: string;
  readonly targetPorts: readonly number[];
}

export class InvalidPoolError extends Error {
  override name = "InvalidPoolError";
}

export function poolCollectionPath(group: string, namespace: string): string {
  const version = POOL_VERSIONS[group];
  if (version === undefined)
    throw new InvalidPoolError(
      `unknown InferencePool group "${group}" (expected ${Object.keys(POOL_VERSIONS).join(" or ")})`,
    );
  return `/apis/${group}/${version}/namespaces/${encodeURIComponent(namespace)}/inferencepools`;
}

/** Reads either shape (decided by the object's content, so a mislabelled apiVersion still works). */
export function parsePool(pool: KubeObject): PoolSpec {
  const spec = (pool.spec ?? {}) as Record<string, unknown>;
  const rawSelector = spec.selector as Record<string, unknown> | undefined;
  if (rawSelector === undefined || rawSelector === null || typeof rawSelector !== "object")
    throw new InvalidPoolError("spec.selector is missing");
  const isLabelSelector = "matchLabels" in rawSelector || "matchExpressions" in rawSelector;
  const selector = isLabelSelector
    ? selectorFromObject(rawSelector)
    : selectorFromObject({ matchLabels: rawSelector as Record<string, string> });
  // An empty selector would select every pod in the namespace (the EPP itself included): refuse it.
  if (selector.length === 0) throw new InvalidPoolError("spec.selector selects nothing specific (empty)");

  let ports: number[];
  if (Array.isArray(spec.targetPorts)) {
    ports = (spec.targetPorts as Array<{ number?: unknown }>).map((p) => Number(p?.number));
  } else if (spec.targetPortNumber !== undefined) {
    ports = [Number(spec.targetPortNumber)];
  } else throw new InvalidPoolError("spec.targetPorts (v1) or spec.targetPortNumber (v1alpha2) is missing");
  if (ports.length === 0 || ports.length > 8)
    throw new InvalidPoolError(`expected 1..8 target ports, got ${ports.length}`);
  for (const p of ports)
    if (!Number.isInteger(p) || p < 1 || p > 65535)
      throw new InvalidPoolError(`invalid target port ${String(p)}`);
  return { selector, selectorText: selectorString(selector), targetPorts: ports };
}
