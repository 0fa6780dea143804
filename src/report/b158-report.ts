import { openB158File } from "../formats/b158/read.js";
import { unpackLayout } from "../pack/codec.js";
import { describeGranularity } from "../pack/scales.js";
import { countBySeverity, type Diagnostic } from "../model/diagnostics.js";
import { validateOpen, type FileScanProgress } from "../convert/validate-b158.js";
import { TOOL } from "../version.js";
import { TERNARY_TYPE } from "../export/gguf.js";
import type { B158File } from "../formats/b158/read.js";
import { modelActivationDiagnostics } from "../model/activation.js";
import type { LayoutId } from "../pack/layouts.js";
import { bitsPerWeightByRole } from "./bits-per-weight.js";
import type { ValidateReport } from "./checkpoint-report.js";

/** What `inspect <file.b158> --json` prints (schemas/inspect-b158.schema.json). */
export interface B158Report {
  readonly schemaVersion: 1;
  readonly kind: "b158";
  readonly tool: { readonly name: string; readonly version: string };
  readonly file: string;
  readonly size: number;
  readonly version: { readonly major: number; readonly minor: number };
  readonly headerLength: number;
  readonly dataOffset: number;
  readonly model: { readonly family: string; readonly architecture: string | null };
  readonly writer: { readonly name: string; readonly version: string };
  readonly files: Readonly<Record<string, number>>;
  readonly provenance: unknown;
  readonly tensors: readonly {
    readonly name: string;
    readonly ggufName: string | null;
    readonly shape: readonly number[];
    readonly role: string;
    readonly layout: string;
    readonly params: Readonly<Record<string, number | string>>;
    /** The per-tensor scale; null for plain arrays and per-group tensors. */
    readonly scale: number | null;
    /** Per-group scales: weights per group along K (K: per row); null otherwise. */
    readonly groupSize: number | null;
    /** "per tensor", "per row (G = K = 2560)", "per group of 128 along K"; null for plain arrays. */
    readonly granularity: string | null;
    readonly sourceDtype: string;
    /** Absolute byte offset of the payload in the file. */
    readonly offset: number;
    readonly length: number;
    readonly sha256: string;
    readonly bitsPerWeight: number;
    /** Share of -1, 0, +1 codes (ternary layouts). */
    readonly distribution: { readonly minus: number; readonly zero: number; readonly plus: number } | null;
  }[];
  readonly summary: { readonly tensors: number; readonly byLayout: Readonly<Record<string, number>>; readonly bitsPerWeight: Readonly<Record<string, number>> };
  /** What the file's model means for the runtimes its layout targets (e.g. W_GGUF_ACTIVATION). */
  readonly diagnostics: readonly Diagnostic[];
}

/** For the runtimes that can hold the file's ternary layouts: which compute the wrong FFN activation. */
function b158Diagnostics(file: B158File): Diagnostic[] {
  const layouts = new Set(file.tensors.flatMap((t) => (t.layoutParams === undefined ? [] : [t.layoutParams.layout as LayoutId])));
  return modelActivationDiagnostics({
    family: file.header.model.family,
    hfArchitecture: file.header.model.architecture ?? undefined,
    config: file.header.model.config ?? undefined,
    weightTypes: [...layouts].map((l) => TERNARY_TYPE[l]),
  });
}

export async function inspectB158(path: string): Promise<B158Report> {
  const file = await openB158File(path);
  try {
    const byLayout: Record<string, number> = {};
    const tensors: B158Report["tensors"][number][] = [];
    for (const t of file.tensors) {
      const weights = t.shape.reduce((a, b) => a * b, 1);
      let distribution = null;
      if (t.layoutParams !== undefined) {
        const { codes } = unpackLayout(t.layoutParams, await file.readPayload(t.name), t.shape as [number, number], undefined, { file: file.name, tensor: t.name });
        const counts = [0, 0, 0];
        for (let i = 0; i < codes.length; i++) counts[codes[i]! + 1]!++;
        distribution = { minus: counts[0]! / codes.length, zero: counts[1]! / codes.length, plus: counts[2]! / codes.length };
      }
      byLayout[t.layout] = (byLayout[t.layout] ?? 0) + 1;
      tensors.push({
        name: t.name,
        ggufName: t.gguf_name,
        shape: t.shape,
        role: t.role,
        layout: t.layout,
        params: t.params,
        scale: t.scale ?? null,
        groupSize: t.group_size ?? null,
        granularity: t.layoutParams === undefined ? null : describeGranularity(t.group_size, t.shape[1]!),
        sourceDtype: t.source_dtype,
        offset: t.fileOffset,
        length: t.length,
        sha256: t.sha256,
        bitsPerWeight: weights === 0 ? 0 : (t.length * 8) / weights,
        distribution,
      });
    }
    const bitsPerWeight = bitsPerWeightByRole(file.tensors.map((t) => ({ role: t.role, bytes: t.length, weights: t.shape.reduce((a, b) => a * b, 1) })));
    return {
      schemaVersion: 1,
      kind: "b158",
      tool: TOOL,
      file: path,
      size: file.size,
      version: file.version,
      headerLength: file.headerLength,
      dataOffset: file.dataOffset,
      model: { family: file.header.model.family, architecture: file.header.model.architecture },
      writer: file.header.tool,
      files: Object.fromEntries(Object.entries(file.header.files).map(([name, bytes]) => [name, bytes.byteLength])),
      provenance: file.header.provenance,
      tensors,
      summary: { tensors: tensors.length, byLayout, bitsPerWeight },
      diagnostics: b158Diagnostics(file),
    };
  } finally {
    await file.close();
  }
}

export async function validateB158Report(path: string, onProgress?: (progress: FileScanProgress) => void): Promise<ValidateReport> {
  const file = await openB158File(path);
  try {
    const result = await validateOpen(file, onProgress === undefined ? {} : { onProgress });
    const diagnostics: Diagnostic[] = [...result.diagnostics, ...b158Diagnostics(file)];
    const counts = countBySeverity(diagnostics);
    return {
      schemaVersion: 1,
      kind: "b158",
      tool: TOOL,
      source: path,
      ok: counts.error === 0,
      family: file.header.model.family as ValidateReport["family"],
      tensors: file.tensors.length,
      tensorsScanned: file.tensors.length,
      bytesScanned: file.size,
      diagnostics,
      summary: { errors: counts.error, warnings: counts.warning },
    };
  } finally {
    await file.close();
  }
}
