// A `kustomize build` for the subset deploy/ uses — resources (files and directories), namespace,
// replicas, and JSON 6902 patches with a kind/name target — so CI renders the overlays without the kustomize
// binary. Semantics follow kustomize v5: the namespace applies to every namespaced object and to
// ServiceAccount subjects of RoleBindings; patches apply after the bases are built, in order.
// Anything else in a kustomization.yaml fails loudly rather than being ignored.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";

export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  [k: string]: unknown;
};

const KNOWN_KEYS = new Set(["apiVersion", "kind", "namespace", "resources", "patches", "replicas"]);
const SCALABLE = new Set(["Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"]);
const CLUSTER_SCOPED = new Set([
  "Namespace",
  "ClusterRole",
  "ClusterRoleBinding",
  "CustomResourceDefinition",
]);

export function parseYamlFile(path: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(path, "utf8"));
  for (const d of docs) if (d.errors.length > 0) throw new Error(`${path}: ${d.errors[0]!.message}`);
  return docs.map((d) => d.toJS()).filter((d) => d !== null && d !== undefined);
}

export function kustomizeBuild(dir: string): K8sObject[] {
  const file = join(dir, "kustomization.yaml");
  if (!existsSync(file)) throw new Error(`${dir}: no kustomization.yaml`);
  const k = parseYamlFile(file)[0] as Record<string, unknown>;
  for (const key of Object.keys(k))
    if (!KNOWN_KEYS.has(key)) throw new Error(`${file}: unsupported field "${key}"`);

  let objects: K8sObject[] = [];
  for (const r of (k.resources as string[] | undefined) ?? []) {
    const path = join(dir, r);
    if (statSync(path).isDirectory()) objects.push(...kustomizeBuild(path));
    else
      for (const doc of parseYamlFile(path)) {
        const o = doc as K8sObject;
        if (
          typeof o.apiVersion !== "string" ||
          typeof o.kind !== "string" ||
          typeof o.metadata?.name !== "string"
        )
          throw new Error(`${path}: a document lacks apiVersion, kind or metadata.name`);
        objects.push(o);
      }
  }
  objects = structuredClone(objects);

  for (const p of (k.patches as
    | Array<{ target?: { kind?: string; name?: string }; patch?: string }>
    | undefined) ?? []) {
    if (p.patch === undefined || p.target === undefined)
      throw new Error(`${file}: only inline patches with a target`);
    const ops = parseAllDocuments(p.patch)[0]!.toJS() as PatchOp[];
    if (!Array.isArray(ops)) throw new Error(`${file}: only JSON 6902 patches (a list of ops) are supported`);
    const hits = objects.filter(
      (o) =>
        (p.target!.kind === undefined || o.kind === p.target!.kind) &&
        (p.target!.name === undefined || o.metadata.name === p.target!.name),
    );
    if (hits.length === 0)
      throw new Error(`${file}: patch target ${JSON.stringify(p.target)} matches nothing`);
    for (const o of hits) for (const op of ops) applyOp(o, op, file);
  }

  for (const r of (k.replicas as Array<{ name: string; count: number }> | undefined) ?? []) {
    const hits = objects.filter((o) => o.metadata.name === r.name && SCALABLE.has(o.kind));
    if (hits.length === 0) throw new Error(`${file}: replicas for unknown "${r.name}"`);
    for (const o of hits) (o.spec as Record<string, unknown>).replicas = r.count;
  }

  const ns = k.namespace as string | undefined;
  if (ns !== undefined)
    for (const o of objects) {
      // A ClusterRoleBinding is cluster-scoped, but its ServiceAccount subjects still move to the namespace.
      if (o.kind === "RoleBinding" || o.kind === "ClusterRoleBinding")
        for (const s of (o.subjects as Array<Record<string, string>> | undefined) ?? [])
          if (s.kind === "ServiceAccount") s.namespace = ns;
      if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = ns;
    }
  return objects;
}

interface PatchOp {
  op: "add" | "replace" | "remove";
  path: string;
  value?: unknown;
}

function applyOp(target: unknown, op: PatchOp, file: string): void {
  const parts = op.path
    .split("/")
    .slice(1)
    .map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
  const last = parts.pop();
  if (last === undefined) throw new Error(`${file}: bad patch path ${op.path}`);
  let node = target as Record<string, unknown> | unknown[];
  for (const part of parts) {
    const next = Array.isArray(node) ? node[Number(part)] : node[part];
    if (next === undefined || next === null || typeof next !== "object")
      throw new Error(`${file}: patch path ${op.path} does not exist`);
    node = next as Record<string, unknown> | unknown[];
  }
  const value = structuredClone(op.value);
  if (Array.isArray(node)) {
    const i = last === "-" ? node.length : Number(last);
    if (!Number.isInteger(i) || i < 0 || i > node.length) throw new Error(`${file}: bad index in ${op.path}`);
    if (op.op === "add") node.splice(i, 0, value);
    else if (i >= node.length) throw new Error(`${file}: ${op.path} does not exist`);
    else if (op.op === "replace") node[i] = value;
    else node.splice(i, 1);
    return;
  }
  if (op.op !== "add" && !(last in node)) throw new Error(`${file}: ${op.path} does not exist`);
  if (op.op === "remove") delete node[last];
  else node[last] = value;
}
