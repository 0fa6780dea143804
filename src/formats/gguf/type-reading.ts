import { B158Error, type ErrorCode } from "../../errors.js";
import {
  alignTo,
  BITNET_CPP_ARCHITECTURES,
  bitnetShapeProblem,
  GGUF_TABLE_IDS,
  GGUF_TABLES,
  storedBytes,
  type GgmlType,
  type GgufTableId,
  type GgufTypeTable,
  type GgufValue,
} from "./spec.js";
import { TARGET_KEY } from "./targets.js";

/**
 * Which runtime's table a GGUF's type ids are read with. Ids 36-43 (and 142/143) mean different
 * things in mainline llama.cpp, bitnet.cpp's 2024 and 2026 forks and PrismML's fork, and nothing
 * in a file says which unless b158 wrote it (`b158.target`). Otherwise every table is tried on the
 * whole file, and the evidence decides, strongest first:
 * 1. the tensors' byte sizes: only a table whose meanings make every offset exactly the running
 *    sum of padded sizes, and the data fit in the file, can be the file's (gguf.cpp's own rule);
 * 2. the file size: a table whose last tensor ends exactly at the end of the file (or its padding);
 * 3. the architecture: bitnet-b1.58 / bitnet-25 exist only in bitnet.cpp.
 * When the tables left still read an id differently, the reading is "ambiguous" and the report
 * says so. `general.file_type` is never evidence: its values collide too.
 */
export interface RawTensorInfo {
  readonly name: string;
  readonly ne: readonly number[];
  readonly typeId: number;
  readonly offset: number;
}

export interface TypedTensorInfo {
  readonly name: string;
  readonly ne: readonly number[];
  readonly type: GgmlType;
  readonly offset: number;
  /** Stored bytes (before alignment padding). */
  readonly length: number;
}

export type TypeDecision = "declared" | "sizes" | "architecture" | "ambiguous";

export interface TypeReading {
  /** The table the tensors were read with. */
  readonly table: GgufTableId;
  /** The file's `b158.target` value, when it has one (a string naming no table is ignored). */
  readonly declared: string | undefined;
  readonly decidedBy: TypeDecision;
  /** Every table whose meanings fit the file's sizes and offsets. */
  readonly fits: readonly GgufTableId[];
  /** Why each other table does not fit (its first broken rule). */
  readonly rejected: readonly { readonly table: GgufTableId; readonly reason: string }[];
  /** Ids the remaining tables still read differently (decidedBy "ambiguous"). */
  readonly ambiguous: readonly { readonly id: number; readonly meanings: readonly string[] }[];
  readonly tensors: readonly TypedTensorInfo[];
}

interface Layout {
  readonly alignment: number;
  readonly dataOffset: number;
  readonly size: number;
}

interface Failure {
  /** How far the table got: the tensor it failed at (tensors.length for the data-end check). */
  readonly index: number;
  readonly code: ErrorCode;
  readonly message: string;
  readonly details: Record<string, unknown>;
}

type Fit = { readonly ok: true; readonly tensors: TypedTensorInfo[]; readonly end: number } | { readonly ok: false; readonly failure: Failure };

/** Lays the tensors out with one table's meanings: the checks gguf.cpp makes, in its terms. */
function fitTable(table: GgufTypeTable, raws: readonly RawTensorInfo[], layout: Layout): Fit {
  const tensors: TypedTensorInfo[] = [];
  const failed = (index: number, code: ErrorCode, message: string, details: Record<string, unknown>): Fit => ({ ok: false, failure: { index, code, message, details } });
  let expected = 0;
  for (const [i, raw] of raws.entries()) {
    const { name, ne, typeId, offset } = raw;
    const type = table.types.get(typeId);
    if (type === undefined) return failed(i, "E_GGUF_TENSOR", `tensor "${name}" has type ${typeId}, unknown to ${table.label}`, { tensor: name, type: typeId });
    if (ne.length < table.minDims) return failed(i, "E_GGUF_TENSOR", `tensor "${name}" has 0 dimensions; ${table.label}'s loader asserts n_dims >= 1`, { tensor: name, dims: 0 });
    // gguf.cpp pads missing dims with 1: a 0-dim tensor's row is one element
    const row = ne.length > 0 ? ne[0]! : 1;
    if (row % type.blockSize !== 0) return failed(i, "E_GGUF_TENSOR", `tensor "${name}" row of ${row} elements is not a multiple of ${type.name}'s block of ${type.blockSize}`, { tensor: name, ne });
    const problem = bitnetShapeProblem(type, ne);
    if (problem !== undefined) return failed(i, "E_GGUF_TENSOR", `${type.name} tensor "${name}": ${problem}`, { tensor: name, ne });
    if (offset !== expected) {
      const previous = tensors.at(-1);
      const slot = previous?.type.bitnet !== undefined ? ` ("${previous.name}" before it is ${previous.type.name}: ${previous.length} bytes with the 32-byte scale slot bitnet.cpp counts after its codes)` : "";
      return failed(i, "E_GGUF_OFFSETS", `tensor "${name}" is at data offset ${offset}; gguf.cpp requires ${expected} (tensors contiguous, in order, each padded to ${layout.alignment})${slot}`, { tensor: name, offset, expected });
    }
    const length = storedBytes(type, ne);
    tensors.push({ name, ne, type, offset, length });
    expected = alignTo(offset + length, layout.alignment);
  }
  const last = tensors.at(-1);
  const end = last === undefined ? layout.dataOffset : layout.dataOffset + last.offset + last.length;
  if (end > layout.size) return failed(raws.length, "E_GGUF_TRUNCATED", `is ${layout.size} bytes; its tensors need ${end}`, { size: layout.size, needed: end });
  return { ok: true, tensors, end };
}

const signature = (t: GgmlType | undefined): string => (t === undefined ? "-" : `${t.name}/${t.blockSize}/${t.typeSize}`);
const describe = (table: GgufTableId, t: GgmlType): string => `${GGUF_TABLES[table].label}: ${t.name}${t.note === undefined ? "" : ` (${t.note})`}`;

/** Ids the tables read differently, with each reading. */
function disagreements(tables: readonly GgufTableId[], ids: ReadonlySet<number>): { id: number; meanings: string[] }[] {
  const out: { id: number; meanings: string[] }[] = [];
  for (const id of ids) {
    const seen = new Map<string, string>();
    for (const table of tables) {
      const t = GGUF_TABLES[table].types.get(id);
      if (t !== undefined && !seen.has(signature(t))) seen.set(signature(t), describe(table, t));
    }
    if (seen.size > 1) out.push({ id, meanings: [...seen.values()] });
  }
  return out;
}

/** Tables in the order a tie is broken: the architecture's runtime first, then mainline. */
function preference(metadata: ReadonlyMap<string, GgufValue>): GgufTableId[] {
  const arch = metadata.get("general.architecture");
  if (arch?.type === "string" && BITNET_CPP_ARCHITECTURES.includes(arch.value as string)) return ["bitnet.cpp-2024", "bitnet.cpp-2026", "llama.cpp", "prismml"];
  for (const key of metadata.keys()) if (key.startsWith("prism.")) return ["prismml", "llama.cpp", "bitnet.cpp-2024", "bitnet.cpp-2026"];
  return ["llama.cpp", "bitnet.cpp-2024", "bitnet.cpp-2026", "prismml"];
}

export function readTensorTypes(file: string, raws: readonly RawTensorInfo[], metadata: ReadonlyMap<string, GgufValue>, layout: Layout): TypeReading {
  const results = new Map<GgufTableId, Fit>(GGUF_TABLE_IDS.map((id) => [id, fitTable(GGUF_TABLES[id], raws, layout)]));
  const order = preference(metadata);
  const fits = order.filter((id) => results.get(id)!.ok);
  const declaredValue = metadata.get(TARGET_KEY);
  const declared = declaredValue?.type === "string" ? (declaredValue.value as string) : undefined;
  const ids = new Set(raws.map((r) => r.typeId));
  const done = (table: GgufTableId, decidedBy: TypeDecision, ambiguous: TypeReading["ambiguous"] = []): TypeReading => {
    const fit = results.get(table)!;
    const rejected = order.flatMap((id) => {
      const r = results.get(id)!;
      return r.ok ? [] : [{ table: id, reason: r.failure.message }];
    });
    return { table, declared, decidedBy, fits, rejected, ambiguous, tensors: fit.ok ? fit.tensors : [] };
  };

  if (declared !== undefined && (GGUF_TABLE_IDS as readonly string[]).includes(declared)) {
    const table = declared as GgufTableId;
    const fit = results.get(table)!;
    if (!fit.ok) throw failure(file, fit.failure, `The file's ${TARGET_KEY} says ${declared}, so its type ids were read with ${GGUF_TABLES[table].label}'s table.`);
    return done(table, "declared");
  }
  if (fits.length === 0) {
    // report the table that explained the most of the file (ties: the architecture's runtime)
    const best = order.map((id) => (results.get(id) as Extract<Fit, { ok: false }>).failure).reduce((a, b) => (b.index > a.index ? b : a));
    throw failure(file, best, hintFor(best, raws, order));
  }

  let candidates = fits;
  let decidedBy: TypeDecision = "sizes";
  if (disagreements(candidates, ids).length > 0) {
    const exact = candidates.filter((id) => {
      const fit = results.get(id) as Extract<Fit, { ok: true }>;
      return layout.size === fit.end || layout.size === alignTo(fit.end, layout.alignment);
    });
    if (exact.length > 0) candidates = exact;
  }
  if (disagreements(candidates, ids).length > 0 && order[0] !== "llama.cpp") {
    const runtime = GGUF_TABLES[order[0]!].runtime;
    const same = candidates.filter((id) => GGUF_TABLES[id].runtime === runtime);
    if (same.length > 0 && same.length < candidates.length) {
      candidates = same;
      decidedBy = "architecture";
    }
  }
  const left = disagreements(candidates, ids);
  return done(candidates[0]!, left.length > 0 ? "ambiguous" : decidedBy, left);
}

function failure(file: string, f: Failure, hint: string | undefined): B158Error {
  return new B158Error(f.code, `${file}: ${f.message}`, { details: { file, ...f.details }, hint: hint ?? "The file is damaged or not a valid GGUF; write it again." });
}

/** For an id one table does not know: what the others would have read it as, and why that failed too. */
function hintFor(f: Failure, raws: readonly RawTensorInfo[], order: readonly GgufTableId[]): string | undefined {
  const raw = raws[f.index];
  if (raw === undefined || f.code !== "E_GGUF_TENSOR" || f.details.type === undefined) return undefined;
  const others = order.flatMap((id) => {
    const t = GGUF_TABLES[id].types.get(raw.typeId);
    return t === undefined ? [] : [describe(id, t)];
  });
  if (others.length === 0) return `No runtime b158 knows (${GGUF_TABLE_IDS.join(", ")}) defines type ${raw.typeId}.`;
  return `Type ${raw.typeId} is ${others.join("; ")}; but with those meanings the tensors' sizes and offsets do not fit the file either.`;
}
