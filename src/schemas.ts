import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";

/**
 * Every structured document b158 reads or writes is checked against a JSON Schema in
 * `schemas/` (the normative copies, shipped with the package). Compiled once, strict mode.
 */

const SCHEMA_DIR = fileURLToPath(new URL("../schemas/", import.meta.url));

export const SCHEMA_NAMES = ["hf-config", "inspect", "inspect-b158", "inspect-gguf", "validate", "b158-header", "manifest", "eval", "run", "convert", "error"] as const;
export type SchemaName = (typeof SCHEMA_NAMES)[number];

const ajv = new Ajv({ strict: true, allErrors: true, allowUnionTypes: true });
const compiled = new Map<SchemaName, ValidateFunction>();

export function schemaPath(name: SchemaName): string {
  return `${SCHEMA_DIR}${name}.schema.json`;
}

export function getValidator(name: SchemaName): ValidateFunction {
  let validate = compiled.get(name);
  if (validate === undefined) {
    const schema = JSON.parse(readFileSync(schemaPath(name), "utf8")) as object;
    validate = ajv.compile(schema);
    compiled.set(name, validate);
  }
  return validate;
}

/** Human summary of ajv errors: "/quantization_config/linear_class must be string; ...". */
export function describeSchemaErrors(errors: ErrorObject[] | null | undefined, limit = 5): string {
  if (!errors || errors.length === 0) return "unknown schema error";
  const parts = errors.slice(0, limit).map((e) => `${e.instancePath || "/"} ${e.message ?? "is invalid"}`);
  if (errors.length > limit) parts.push(`and ${errors.length - limit} more`);
  return parts.join("; ");
}
