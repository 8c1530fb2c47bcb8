// Recognises configuration written for other EPPs. A document with top-level `apiVersion` and `kind` is a
// Kubernetes-style resource: GIE/llm-d `EndpointPickerConfig` and ACK `InferenceTrafficPolicy` are
// translated; other kinds in a multi-document file (InferencePool, Deployment, …) are skipped. Anything else
// is kvpick's own schema, and must then be the only document.
import { ConfigError } from "../../errors.js";
import { translateEndpointPickerConfig } from "./endpoint-picker-config.js";
import { translateInferenceTrafficPolicy } from "./inference-traffic-policy.js";

const TRANSLATORS: Readonly<
  Record<string, (doc: unknown) => { config: unknown; ignored: readonly string[] }>
> = {
  EndpointPickerConfig: translateEndpointPickerConfig,
  InferenceTrafficPolicy: translateInferenceTrafficPolicy,
};

const isResource = (d: unknown): d is { apiVersion: unknown; kind: unknown } =>
  typeof d === "object" && d !== null && "apiVersion" in d && "kind" in d;

/**
 * The kvpick-shaped inputs the documents stand for, in order (later ones win when merged), and what was
 * accepted but ignored. Throws ConfigError; with several documents, lines start with `document N: `.
 */
export function fromDocuments(
  docs: readonly unknown[],
  origin: string,
): { inputs: unknown[]; notes: string[] } {
  const present = docs.filter((d) => d !== null && d !== undefined);
  if (present.length === 0) return { inputs: [], notes: [] };
  if (!present.some(isResource)) {
    if (present.length > 1)
      throw new ConfigError([`${origin}: ${present.length} YAML documents; a kvpick config is one document`]);
    return { inputs: present, notes: [] };
  }
  const inputs: unknown[] = [];
  const notes: string[] = [];
  const problems: string[] = [];
  const label = (i: number) => (present.length > 1 ? `document ${i + 1}: ` : "");
  present.forEach((doc, i) => {
    if (!isResource(doc)) {
      problems.push(`${label(i)}not a Kubernetes-style resource (no apiVersion/kind) beside ones that are`);
      return;
    }
    const translate = typeof doc.kind === "string" ? TRANSLATORS[doc.kind] : undefined;
    if (translate === undefined) {
      if (present.length === 1)
        problems.push(
          `kind: expected EndpointPickerConfig or InferenceTrafficPolicy, got ${JSON.stringify(doc.kind)}`,
        );
      else notes.push(`${label(i)}kind ${JSON.stringify(doc.kind)} skipped`);
      return;
    }
    try {
      const t = translate(doc);
      inputs.push(t.config);
      notes.push(...t.ignored.map((line) => `${label(i)}${doc.kind} ${line}`));
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...err.problems.map((line) => `${label(i)}${line}`));
    }
  });
  if (problems.length > 0) throw new ConfigError(problems);
  if (inputs.length === 0)
    throw new ConfigError([
      `${origin}: no EndpointPickerConfig or InferenceTrafficPolicy among its documents`,
    ]);
  return { inputs, notes };
}
