import type { GgufFile } from "../formats/gguf/read.js";
import { BITNET_CPP_ARCHITECTURES, GGUF_TABLE_IDS, GGUF_TABLES, OTHER_TYPE_MEANINGS, type GgufTableId } from "../formats/gguf/spec.js";
import { runtimeActivation, runtimeHasArchitecture, TARGET_KEY } from "../formats/gguf/targets.js";
import { activationWarning } from "../model/activation.js";
import type { Diagnostic } from "../model/diagnostics.js";

/**
 * Which runtimes can load a GGUF and what each makes of it: the colliding meanings of its type ids
 * and `general.file_type`, the table its ids were read with and why, and the FFN activation each
 * runtime computes for its architecture. For any GGUF, ours or anyone's.
 */
export interface TypeIdReport {
  readonly id: number;
  readonly tensors: number;
  /** The meaning the file was read with. */
  readonly readAs: string;
  /** Every meaning b158 knows, and whether that runtime's sizes fit the file (null: no table reads it). */
  readonly meanings: readonly { readonly runtime: string; readonly name: string; readonly fits: boolean | null }[];
  readonly ambiguous: boolean;
}

export interface RuntimeReport {
  readonly id: GgufTableId;
  readonly label: string;
  /** false: the runtime refuses or misreads the file; null: its type ids fit, its architecture is not one b158 checks. */
  readonly loads: boolean | null;
  readonly reason: string;
  /** The FFN activation the runtime's graph computes for the file's architecture, when b158 knows it. */
  readonly activation: string | null;
}

export interface GgufCompat {
  readonly typeTable: {
    readonly table: GgufTableId;
    readonly label: string;
    readonly declared: string | null;
    readonly decidedBy: GgufFile["types"]["decidedBy"];
    readonly fits: readonly GgufTableId[];
  };
  readonly typeIds: readonly TypeIdReport[];
  readonly fileTypeMeanings: readonly { readonly runtime: string; readonly name: string }[];
  readonly runtimes: readonly RuntimeReport[];
  readonly loadableBy: string;
  readonly diagnostics: readonly Diagnostic[];
}

export function ggufCompat(file: GgufFile): GgufCompat {
  const reading = file.types;
  const arch = file.scalar("general.architecture");
  const architecture = typeof arch === "string" ? arch : undefined;
  const counts = new Map<number, { tensors: number; readAs: string }>();
  for (const t of file.tensors) {
    const entry = counts.get(t.type.id) ?? { tensors: 0, readAs: t.type.name };
    entry.tensors++;
    counts.set(t.type.id, entry);
  }
  const ambiguousIds = new Set(reading.ambiguous.map((a) => a.id));
  const typeIds = [...counts.entries()]
    .sort(([a], [b]) => a - b)
    .map(([id, { tensors, readAs }]) => ({ id, tensors, readAs, meanings: meaningsOf(id, reading.fits), ambiguous: ambiguousIds.has(id) }));

  const fileType = file.scalar("general.file_type");
  const fileTypeMeanings = typeof fileType === "number" ? fileTypeMeaningsOf(fileType) : [];
  const runtimes = GGUF_TABLE_IDS.map((id) => runtimeReport(file, id, architecture));
  const loading = runtimes.filter((r) => r.loads !== false);
  const loadableBy = loading.length === 0 ? "none of the runtimes b158 knows" : loading.map((r) => `${r.label}${r.loads === null ? " (types fit; architecture not checked)" : ""}`).join(", ");

  const diagnostics: Diagnostic[] = [];
  const table = GGUF_TABLES[reading.table];
  if (reading.declared !== undefined && !(GGUF_TABLE_IDS as readonly string[]).includes(reading.declared)) {
    diagnostics.push({ severity: "warning", code: "W_GGUF_TARGET_UNKNOWN", message: `${TARGET_KEY} is "${reading.declared}", which names no runtime b158 knows; the type ids were read by evidence instead` });
  }
  diagnostics.push({ severity: "info", code: "I_GGUF_TYPE_TABLE", message: `type ids read with ${table.label}'s table: ${decisionText(file)}` });
  if (reading.decidedBy === "ambiguous") {
    for (const a of reading.ambiguous) {
      diagnostics.push({
        severity: "warning",
        code: "W_GGUF_AMBIGUOUS_TYPES",
        message: `type ${a.id} fits the file as ${a.meanings.join(" and as ")}; nothing in the file decides (no ${TARGET_KEY}, the sizes and the architecture agree with both). Read as ${table.label}'s`,
      });
    }
  }
  if (table.runtime === "bitnet.cpp") diagnostics.push({ severity: "info", code: "I_GGUF_BITNET_CPP", message: `bitnet.cpp type ids (${typeIds.filter((t) => ["I2_S", "TL1", "TL2"].includes(t.readAs)).map((t) => `${t.readAs} ${t.id}`).join(", ")}): loadable by ${loadableBy}; mainline llama.cpp rejects or misreads these ids` });

  const needed = neededActivation(file);
  if (needed !== undefined && architecture !== undefined) {
    const warning = activationWarning(needed.act, needed.source, loading.map((r) => ({ table: r.id, architecture })));
    if (warning !== undefined) diagnostics.push(warning);
  }
  return {
    typeTable: { table: reading.table, label: table.label, declared: reading.declared ?? null, decidedBy: reading.decidedBy, fits: reading.fits },
    typeIds,
    fileTypeMeanings,
    runtimes,
    loadableBy,
    diagnostics,
  };
}

/** The FFN activation the file's model needs, and where that is said: `<arch>.hidden_activation`, else relu2 for bitnet.cpp's own architectures. */
export function neededActivation(file: GgufFile): { readonly act: string; readonly source: string } | undefined {
  const arch = file.scalar("general.architecture");
  if (typeof arch !== "string") return undefined;
  const declared = file.scalar(`${arch}.hidden_activation`);
  if (typeof declared === "string") return { act: declared, source: `${arch}.hidden_activation` };
  return BITNET_CPP_ARCHITECTURES.includes(arch) ? { act: "relu2", source: `the activation arch ${arch} was made for (no ${arch}.hidden_activation)` } : undefined;
}

/** Each distinct meaning of an id, with the runtimes that give it, and whether the file's sizes fit one of those runtimes' tables. */
function meaningsOf(id: number, fits: readonly GgufTableId[]): TypeIdReport["meanings"] {
  const byMeaning = new Map<string, { runtimes: string[]; fits: boolean }>();
  for (const tableId of GGUF_TABLE_IDS) {
    const t = GGUF_TABLES[tableId].types.get(id);
    if (t === undefined) continue;
    const name = `${t.name}${t.note === undefined ? "" : ` (${t.note})`}`;
    const entry = byMeaning.get(name) ?? { runtimes: [], fits: false };
    entry.runtimes.push(GGUF_TABLES[tableId].label);
    entry.fits ||= fits.includes(tableId);
    byMeaning.set(name, entry);
  }
  const out: { runtime: string; name: string; fits: boolean | null }[] = [...byMeaning.entries()].map(([name, e]) => ({ runtime: e.runtimes.join(", "), name, fits: e.fits }));
  for (const other of OTHER_TYPE_MEANINGS[id] ?? []) {
    const [runtime, name] = other.includes(": ") ? (other.split(": ", 2) as [string, string]) : ["other", other];
    out.push({ runtime, name, fits: null });
  }
  return out;
}

/** What general.file_type means in each runtime's numbering (it decides nothing: llama.cpp only prints it). */
export function fileTypeMeaningsOf(value: number): { runtime: string; name: string }[] {
  const out: { runtime: string; name: string }[] = [];
  for (const id of GGUF_TABLE_IDS) {
    for (const [name, v] of Object.entries(GGUF_TABLES[id].fileTypes)) if (v === value) out.push({ runtime: GGUF_TABLES[id].label, name: name.replace(/^(MOSTLY|ALL)_/, "") });
  }
  return out;
}

function runtimeReport(file: GgufFile, id: GgufTableId, architecture: string | undefined): RuntimeReport {
  const label = GGUF_TABLES[id].label;
  const activation = architecture === undefined ? null : (runtimeActivation(id, architecture) ?? null);
  if (!file.types.fits.includes(id)) {
    const reason = file.types.rejected.find((r) => r.table === id)?.reason ?? "its type table does not fit";
    const misread = [...new Set(file.tensors.map((t) => t.type.id))].flatMap((typeId) => {
      const theirs = GGUF_TABLES[id].types.get(typeId);
      const ours = file.tensors.find((t) => t.type.id === typeId)!.type;
      return theirs === undefined ? [`has no type ${typeId}`] : theirs.name !== ours.name || theirs.blockSize !== ours.blockSize ? [`reads type ${typeId} as ${theirs.name}`] : [];
    });
    return { id, label, loads: false, reason: `${misread.length > 0 ? `${misread.join(", ")}: ` : ""}${reason}`, activation };
  }
  if (architecture === undefined) return { id, label, loads: false, reason: "no general.architecture", activation };
  // BitNet-embedding's per-projection input norms: only bitnet.cpp's qwen3 / gemma3 create them
  const normIn = file.tensors.find((t) => /_norm_in\.weight$/.test(t.name));
  if (normIn !== undefined && GGUF_TABLES[id].runtime !== "bitnet.cpp") {
    return { id, label, loads: false, reason: `its ${architecture} creates no *_norm_in tensors ("${normIn.name}"): "wrong number of tensors"`, activation };
  }
  const has = runtimeHasArchitecture(id, architecture);
  if (has === false) return { id, label, loads: false, reason: `it has no architecture "${architecture}"`, activation };
  if (has === undefined) return { id, label, loads: null, reason: `its type ids fit; b158 does not check whether it has architecture "${architecture}"`, activation };
  return { id, label, loads: true, reason: `its type ids fit and it has architecture "${architecture}"`, activation };
}

function decisionText(file: GgufFile): string {
  const r = file.types;
  const others = r.fits.filter((t) => t !== r.table).map((t) => GGUF_TABLES[t].label);
  switch (r.decidedBy) {
    case "declared":
      return `the file's ${TARGET_KEY} says ${r.declared}`;
    case "sizes":
      return others.length === 0 ? "only its meanings make every tensor's size and offset fit the file" : `every table whose sizes fit (also ${others.join(", ")}) reads the file's ids the same way`;
    case "architecture":
      return `the sizes fit more than one table; architecture "${String(file.scalar("general.architecture"))}" exists only in bitnet.cpp`;
    case "ambiguous":
      return `ambiguous: ${r.ambiguous.map((a) => `type ${a.id}`).join(", ")} also fit${r.ambiguous.length === 1 ? "s" : ""} ${others.join(", ")}`;
  }
}
