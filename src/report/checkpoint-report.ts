import { openCheckpoint, type Checkpoint } from "../checkpoint/open.js";
import { resolveSource } from "../checkpoint/resolve.js";
import type { PullProgress } from "../hub/pull.js";
import type { Dtype } from "../formats/safetensors/dtypes.js";
import { countBySeverity, type Diagnostic } from "../model/diagnostics.js";
import type { ModelDims } from "../model/dims.js";
import type { Family } from "../model/family.js";
import { planCheckpoint, type LayoutEstimate, type PlanEntry, type PlanOptions, type TensorPlan, type TensorRole } from "../model/plan.js";
import { scanCheckpoint, type ScanProgress } from "../model/scan.js";
import { TOOL } from "../version.js";

/**
 * What `inspect --json` prints for a checkpoint (schemas/inspect.schema.json), and what the
 * human renderer formats. Plain data: no classes, no bigint, stable key order.
 */
export interface CheckpointReport {
  readonly schemaVersion: 1;
  readonly kind: "checkpoint";
  readonly tool: { readonly name: string; readonly version: string };
  readonly source: { readonly spec: string; readonly origin: Checkpoint["files"]["origin"] };
  readonly files: {
    readonly config: string | null;
    readonly index: string | null;
    readonly weights: readonly { name: string; size: number; headerLength: number; tensorCount: number }[];
    readonly auxiliary: readonly string[];
  };
  readonly architecture: string | null;
  readonly modelType: string | null;
  readonly family: Family;
  readonly dims: ModelDims;
  readonly parameters: { readonly total: number; readonly byRole: Readonly<Record<TensorRole, number>> };
  readonly dtypes: Readonly<Partial<Record<Dtype, number>>>;
  readonly tensors: readonly PlanEntry[];
  readonly estimates: readonly LayoutEstimate[];
  readonly diagnostics: readonly Diagnostic[];
  readonly summary: { readonly errors: number; readonly warnings: number };
}

export interface ValidateReport {
  readonly schemaVersion: 1;
  /** What was validated: a checkpoint, a .b158 file or a GGUF file. */
  readonly kind: "checkpoint" | "b158" | "gguf";
  readonly tool: { readonly name: string; readonly version: string };
  readonly source: string;
  readonly ok: boolean;
  /** null for GGUF files, which do not record one. */
  readonly family: Family["id"] | null;
  readonly tensors: number;
  readonly tensorsScanned: number;
  readonly bytesScanned: number;
  readonly diagnostics: readonly Diagnostic[];
  readonly summary: { readonly errors: number; readonly warnings: number };
}

export interface AnalyzeOptions extends PlanOptions {
  /** "headers" lets remote sources answer with range reads (inspect reads headers and a bounded sample of values only). */
  readonly access?: "full" | "headers";
  /** Progress of a Hub download into the cache, when the source is remote and read in full. */
  readonly onDownload?: (progress: PullProgress) => void;
}

/** Opens a source, builds its plan and hands both to `use`; always closes the files. */
export async function withCheckpointPlan<T>(spec: string, options: AnalyzeOptions, use: (checkpoint: Checkpoint, plan: TensorPlan) => Promise<T>): Promise<T> {
  const checkpoint = await openCheckpoint(await resolveSource(spec, { access: options.access ?? "full", ...(options.onDownload === undefined ? {} : { onDownload: options.onDownload }) }));
  try {
    return await use(checkpoint, await planCheckpoint(checkpoint, options));
  } finally {
    await checkpoint.close();
  }
}

export async function inspectCheckpoint(spec: string, options: AnalyzeOptions = {}): Promise<CheckpointReport> {
  return withCheckpointPlan(spec, { access: "headers", ...options }, async (checkpoint, plan) => checkpointReport(spec, checkpoint, plan));
}

export function checkpointReport(spec: string, checkpoint: Checkpoint, plan: TensorPlan): CheckpointReport {
  const counts = countBySeverity(plan.diagnostics);
  const total = plan.entries.reduce((sum, e) => sum + e.parameters, 0);
  return {
    schemaVersion: 1,
    kind: "checkpoint",
    tool: TOOL,
    source: { spec, origin: checkpoint.files.origin },
    files: {
      config: checkpoint.config === undefined ? null : "config.json",
      index: checkpoint.index === undefined ? null : "model.safetensors.index.json",
      weights: checkpoint.weightsFiles.map(({ name, size, headerLength, tensorCount }) => ({ name, size, headerLength, tensorCount })),
      auxiliary: checkpoint.auxiliaryFiles,
    },
    architecture: checkpoint.config?.architectures[0] ?? null,
    modelType: checkpoint.config?.modelType ?? null,
    family: plan.family,
    dims: plan.dims,
    parameters: { total, byRole: plan.parametersByRole },
    dtypes: plan.dtypes,
    tensors: plan.entries,
    estimates: plan.estimates,
    diagnostics: plan.diagnostics,
    summary: { errors: counts.error, warnings: counts.warning },
  };
}

/** The plan's checks plus a full streaming scan of the data. */
export async function validateCheckpoint(spec: string, options: AnalyzeOptions = {}, onProgress?: (progress: ScanProgress) => void): Promise<ValidateReport> {
  return withCheckpointPlan(spec, options, async (checkpoint, plan) => {
    const scan = await scanCheckpoint(checkpoint, plan, onProgress);
    const diagnostics = [...plan.diagnostics, ...scan.diagnostics];
    const counts = countBySeverity(diagnostics);
    return {
      schemaVersion: 1,
      kind: "checkpoint",
      tool: TOOL,
      source: spec,
      ok: counts.error === 0,
      family: plan.family.id,
      tensors: plan.entries.length,
      tensorsScanned: scan.tensorsScanned,
      bytesScanned: scan.bytesScanned,
      diagnostics,
      summary: { errors: counts.error, warnings: counts.warning },
    };
  });
}
