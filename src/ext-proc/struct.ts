// google.protobuf.Struct <-> plain JSON values. protobufjs' bundled Struct keeps camelCase field names
// (`structValue`, `stringValue`, …) even with keepCase: snake_case keys would be dropped silently and
// Envoy would receive an empty struct (reference envoy-ext-proc.md §5.11).
import type { Struct, StructValue } from "./protos.js";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export function toStruct(object: Record<string, unknown>): Struct {
  const fields: Record<string, StructValue> = {};
  for (const [key, value] of Object.entries(object)) {
    if (value !== undefined) fields[key] = toValue(value);
  }
  return { fields };
}

function toValue(value: unknown): StructValue {
  if (value === null) return { nullValue: "NULL_VALUE" };
  switch (typeof value) {
    case "string":
      return { stringValue: value };
    case "number":
      return { numberValue: value };
    case "bigint":
      return { stringValue: value.toString() }; // Struct numbers are doubles: keep 64-bit values exact
    case "boolean":
      return { boolValue: value };
    case "object":
      if (Array.isArray(value)) return { listValue: { values: value.map(toValue) } };
      return { structValue: toStruct(value as Record<string, unknown>) };
    default:
      return { nullValue: "NULL_VALUE" };
  }
}

export function fromStruct(struct: Struct | undefined): { [key: string]: Json } {
  // Keys come from Envoy metadata (ultimately from clients): a "__proto__" key must be an own property.
  const out: { [key: string]: Json } = {};
  for (const [key, value] of Object.entries(struct?.fields ?? {}))
    Object.defineProperty(out, key, {
      value: fromValue(value),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  return out;
}

export function fromValue(value: StructValue | undefined): Json {
  if (value === undefined) return null;
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.numberValue !== undefined) return value.numberValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.structValue !== undefined) return fromStruct(value.structValue);
  if (value.listValue !== undefined) return (value.listValue.values ?? []).map(fromValue);
  return null;
}
