import { B158Error } from "../../errors.js";
import { isJsonObject, parseStrictJson, StrictJsonError, type JsonValue } from "../strict-json.js";

/** model.safetensors.index.json: which shard holds which tensor. */
export interface SafetensorsIndex {
  readonly weightMap: ReadonlyMap<string, string>;
  /** Shard file names in first-appearance order of the (sorted) weight map. */
  readonly shards: readonly string[];
  readonly totalSize: number | undefined;
}

export function parseSafetensorsIndex(text: string, file: string): SafetensorsIndex {
  const bad = (message: string): never => {
    throw new B158Error("E_INDEX_JSON", `${file}: ${message}`, { details: { file }, hint: "Fix or re-download the index file." });
  };
  let parsed: JsonValue;
  try {
    parsed = parseStrictJson(text);
  } catch (error) {
    return bad(`not valid JSON (${error instanceof StrictJsonError ? error.message : String(error)})`);
  }
  if (!isJsonObject(parsed)) return bad("top level is not an object");
  const map = parsed.weight_map;
  if (!isJsonObject(map)) return bad('has no "weight_map" object');
  const weightMap = new Map<string, string>();
  // A Set, not Array.includes: a hostile index naming 100k distinct shards must not cost O(n^2).
  const shards = new Set<string>();
  for (const name of Object.keys(map).sort()) {
    const shard = map[name];
    if (typeof shard !== "string" || !shard.endsWith(".safetensors")) {
      return bad(`weight_map maps "${name}" to ${JSON.stringify(shard)}, not a .safetensors file name`);
    }
    if (shard.includes("/") || shard.includes("\\")) return bad(`weight_map shard ${JSON.stringify(shard)} is not a plain file name`);
    weightMap.set(name, shard);
    shards.add(shard);
  }
  if (weightMap.size === 0) return bad("weight_map is empty");
  let totalSize: number | undefined;
  const metadata = parsed.metadata;
  if (metadata !== undefined && metadata !== null) {
    if (!isJsonObject(metadata)) return bad('"metadata" is not an object');
    const total = metadata.total_size;
    if (total !== undefined) {
      if (typeof total !== "number" || !Number.isSafeInteger(total) || total < 0) return bad(`metadata.total_size ${JSON.stringify(total)} is not a non-negative integer`);
      totalSize = total;
    }
  }
  return { weightMap, shards: [...shards].sort(), totalSize };
}
