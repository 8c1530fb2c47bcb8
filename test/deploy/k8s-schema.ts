// Schema validation of rendered manifests, offline. Built-in kinds are checked against the models that
// @kubernetes/client-node generates from the Kubernetes OpenAPI spec (v1.34): every field must exist in the
// model (strict: a misspelt `readinesProbe` or a field at the wrong level fails) and have the model's type,
// plus the fields the API server requires that the models do not mark. The CRD kinds deploy/ uses
// (InferencePool, Gateway, HTTPRoute, EnvoyExtensionPolicy) are checked against the small strict shapes
// below, written from their published CRDs.
import * as k8s from "@kubernetes/client-node";
import type { K8sObject } from "./kustomize.js";

type AttributeMap = Array<{ name: string; baseName: string; type: string }>;
type ModelClass = { getAttributeTypeMap(): AttributeMap };

const BUILTIN: Record<string, string> = {
  "v1/ConfigMap": "V1ConfigMap",
  "v1/Service": "V1Service",
  "v1/ServiceAccount": "V1ServiceAccount",
  "apps/v1/Deployment": "V1Deployment",
  "rbac.authorization.k8s.io/v1/Role": "V1Role",
  "rbac.authorization.k8s.io/v1/RoleBinding": "V1RoleBinding",
  "rbac.authorization.k8s.io/v1/ClusterRole": "V1ClusterRole",
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": "V1ClusterRoleBinding",
};

/** Required fields (model name → keys) the generated models do not express. */
const REQUIRED: Record<string, string[]> = {
  V1Container: ["name"],
  V1ContainerPort: ["containerPort"],
  V1ServicePort: ["port"],
  V1EnvVar: ["name"],
  V1Volume: ["name"],
  V1VolumeMount: ["name", "mountPath"],
  V1DeploymentSpec: ["selector", "template"],
  V1PolicyRule: ["verbs"],
  V1RoleRef: ["apiGroup", "kind", "name"],
  V1Subject: ["kind", "name"],
  V1GRPCAction: ["port"],
  V1ObjectFieldSelector: ["fieldPath"],
};

export function validateObject(o: K8sObject): string[] {
  const key = `${o.apiVersion}/${o.kind}`;
  const model = BUILTIN[key];
  if (model !== undefined) {
    const errors: string[] = [];
    checkModel(o, model, `${o.kind}/${o.metadata.name}`, errors);
    return errors;
  }
  const shape = CRDS[key];
  if (shape === undefined) return [`${key}: no schema known (add one to test/deploy/k8s-schema.ts)`];
  const errors: string[] = [];
  checkShape(
    o,
    { ...shape, apiVersion: "string", kind: "string", metadata: META },
    `${o.kind}/${o.metadata.name}`,
    errors,
  );
  return errors;
}

function checkModel(value: unknown, model: string, path: string, errors: string[]): void {
  const cls = (k8s as unknown as Record<string, ModelClass | undefined>)[model];
  if (cls === undefined || typeof cls.getAttributeTypeMap !== "function") {
    errors.push(`${path}: no model ${model}`);
    return;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    errors.push(`${path}: expected an object (${model})`);
    return;
  }
  const attrs = new Map(cls.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  const obj = value as Record<string, unknown>;
  for (const [k, v] of Object.entries(obj)) {
    const type = attrs.get(k);
    if (type === undefined) errors.push(`${path}.${k}: unknown field (${model})`);
    else checkType(v, type, `${path}.${k}`, errors);
  }
  for (const r of REQUIRED[model] ?? []) if (!(r in obj)) errors.push(`${path}.${r}: required (${model})`);
}

function checkType(v: unknown, type: string, path: string, errors: string[]): void {
  if (v === null) return;
  const arr = /^Array<(.+)>$/.exec(type);
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (arr !== null) {
    if (!Array.isArray(v)) errors.push(`${path}: expected a list`);
    else for (const [i, item] of v.entries()) checkType(item, arr[1]!, `${path}[${i}]`, errors);
  } else if (map !== null) {
    if (typeof v !== "object" || Array.isArray(v)) errors.push(`${path}: expected a map`);
    else
      for (const [k, item] of Object.entries(v as object)) checkType(item, map[1]!, `${path}.${k}`, errors);
  } else if (type === "string" || type === "Date") {
    if (typeof v !== "string") errors.push(`${path}: expected a string, got ${JSON.stringify(v)}`);
  } else if (type === "number") {
    if (typeof v !== "number") errors.push(`${path}: expected a number, got ${JSON.stringify(v)}`);
  } else if (type === "boolean") {
    if (typeof v !== "boolean") errors.push(`${path}: expected a boolean, got ${JSON.stringify(v)}`);
  } else if (type === "IntOrString") {
    if (typeof v !== "string" && typeof v !== "number") errors.push(`${path}: expected an int or a string`);
  } else if (type === "any") {
    // free-form
  } else checkModel(v, type, path, errors);
}

// ---- CRD shapes: "string" | "number" | "boolean" | "any" | [shape] | { field: shape } (strict; "?" = optional).
type Shape = string | Shape[] | { [k: string]: Shape };

const META: Shape = {
  name: "string",
  "namespace?": "string",
  "labels?": { "*": "string" },
  "annotations?": { "*": "string" },
};
const PARENT_REF: Shape = {
  "group?": "string",
  "kind?": "string",
  name: "string",
  "namespace?": "string",
  "sectionName?": "string",
  "port?": "number",
};
const BACKEND_REF: Shape = {
  "group?": "string",
  "kind?": "string",
  name: "string",
  "namespace?": "string",
  "port?": "number",
  "weight?": "number",
};

const CRDS: Record<string, Record<string, Shape>> = {
  "inference.networking.k8s.io/v1/InferencePool": {
    spec: {
      selector: {
        "matchLabels?": { "*": "string" },
        "matchExpressions?": [{ key: "string", operator: "string", "values?": ["string"] }],
      },
      targetPorts: [{ number: "number" }],
      "appProtocol?": "string",
      endpointPickerRef: {
        "group?": "string",
        "kind?": "string",
        name: "string",
        "port?": { number: "number" },
        "failureMode?": "string",
      },
    },
  },
  // ACK Gateway with Inference Extension still serves the v1alpha2 pool (`extensionRef` names the EPP Service).
  "inference.networking.x-k8s.io/v1alpha2/InferencePool": {
    spec: {
      selector: { "*": "string" },
      targetPortNumber: "number",
      extensionRef: {
        "group?": "string",
        "kind?": "string",
        name: "string",
        "portNumber?": "number",
        "failureMode?": "string",
      },
    },
  },
  "gateway.networking.k8s.io/v1/Gateway": {
    spec: {
      gatewayClassName: "string",
      listeners: [
        {
          name: "string",
          protocol: "string",
          port: "number",
          "hostname?": "string",
          "allowedRoutes?": "any",
          "tls?": "any",
        },
      ],
      "addresses?": "any",
      "infrastructure?": "any",
    },
  },
  "gateway.networking.k8s.io/v1/HTTPRoute": {
    spec: {
      parentRefs: [PARENT_REF],
      "hostnames?": ["string"],
      rules: [
        {
          "name?": "string",
          "matches?": [
            {
              "path?": { type: "string", value: "string" },
              "headers?": "any",
              "queryParams?": "any",
              "method?": "string",
            },
          ],
          "filters?": "any",
          backendRefs: [BACKEND_REF],
          "timeouts?": { "request?": "string", "backendRequest?": "string" },
        },
      ],
    },
  },
  "gateway.envoyproxy.io/v1alpha1/EnvoyExtensionPolicy": {
    spec: {
      targetRefs: [{ group: "string", kind: "string", name: "string", "sectionName?": "string" }],
      extProc: [
        {
          backendRefs: [BACKEND_REF],
          "processingMode?": {
            "allowModeOverride?": "boolean",
            "request?": { "body?": "string", "attributes?": ["string"] },
            "response?": { "body?": "string", "attributes?": ["string"] },
          },
          "messageTimeout?": "string",
          "failOpen?": "boolean",
          "metadata?": { "accessibleNamespaces?": ["string"], "writableNamespaces?": ["string"] },
        },
      ],
    },
  },
};

function checkShape(v: unknown, shape: Shape, path: string, errors: string[]): void {
  if (shape === "any") return;
  if (typeof shape === "string") {
    if (typeof v !== shape) errors.push(`${path}: expected ${shape}, got ${JSON.stringify(v)}`);
    return;
  }
  if (Array.isArray(shape)) {
    if (!Array.isArray(v)) errors.push(`${path}: expected a list`);
    else for (const [i, item] of v.entries()) checkShape(item, shape[0]!, `${path}[${i}]`, errors);
    return;
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    errors.push(`${path}: expected an object`);
    return;
  }
  const obj = v as Record<string, unknown>;
  if ("*" in shape) {
    for (const [k, item] of Object.entries(obj)) checkShape(item, shape["*"]!, `${path}.${k}`, errors);
    return;
  }
  const fields = new Map(
    Object.entries(shape).map(([k, s]) => [k.replace(/\?$/, ""), { s, optional: k.endsWith("?") }]),
  );
  for (const [k, item] of Object.entries(obj)) {
    const f = fields.get(k);
    if (f === undefined) errors.push(`${path}.${k}: unknown field`);
    else checkShape(item, f.s, `${path}.${k}`, errors);
  }
  for (const [k, f] of fields) if (!f.optional && !(k in obj)) errors.push(`${path}.${k}: required`);
}
