import type { Checkpoint, CheckpointTensor } from "../checkpoint/open.js";
import { isB158Error } from "../errors.js";
import { describeGranularity } from "../pack/scales.js";
import { readStored } from "../pack/stored.js";
import type { LatentDtype } from "../pack/ternarize.js";

/**
 * What the first rows of a weight tensor show about its values, read during planning so that the
 * plan can tell fake-quantized weights (already exactly t x s) from latent ones without reading
 * the model: a bounded read of about SAMPLE_BYTES of whole rows. The plan decides semantics from
 * the config first (docs/ternarization.md); the sample is the evidence for checkpoints whose config
 * says nothing (a plain Qwen3 / Llama config), and the check behind the disagreement warnings.
 */
export interface ValueSample {
  readonly tensor: string;
  /** Rows read from the start of the tensor. */
  readonly rows: number;
  readonly shape: readonly [number, number];
  /**
   * "ternary": the rows read are exactly ternary x scale at some granularity (with a nonzero);
   * "latent": they are not, at any granularity; "zero": all zero, no evidence either way.
   */
  readonly verdict: "ternary" | "latent" | "zero";
  /** When exact: the coarsest granularity that holds in the rows read. */
  readonly granularity?: Granularity;
  /** One sentence for reports. */
  readonly detail: string;
}

/** One scale for the sample, one per row, or one per group of `size` weights along K. */
export type Granularity = { readonly kind: "tensor" } | { readonly kind: "row" } | { readonly kind: "group"; readonly size: number };

/** About this many bytes of whole rows are read (at least one row). */
export const SAMPLE_BYTES = 1024 * 1024;
/** A row longer than this is not sampled: the read stays bounded whatever a header claims. */
const MAX_ROW_BYTES = 16 * 1024 * 1024;
const SAMPLED_DTYPES: Readonly<Record<string, number>> = { F32: 4, F16: 2, BF16: 2 };

export async function sampleTensor(checkpoint: Checkpoint, tensor: CheckpointTensor): Promise<ValueSample | undefined> {
  const elementBytes = SAMPLED_DTYPES[tensor.dtype];
  if (elementBytes === undefined || tensor.shape.length !== 2) return undefined;
  const [M, K] = tensor.shape as [number, number];
  const rowBytes = K * elementBytes;
  if (M === 0 || K === 0 || rowBytes > MAX_ROW_BYTES) return undefined;
  const rows = Math.min(M, Math.max(1, Math.floor(SAMPLE_BYTES / rowBytes)));
  const source = await checkpoint.source(tensor.shard);
  const bytes = await source.read(tensor.fileOffset, rows * rowBytes);
  const shape: [number, number] = [M, K];
  const where = `"${tensor.name}" (${rows === M ? "all" : `the first ${rows} of`} ${M} rows)`;
  try {
    const { scale } = readStored(bytes, tensor.dtype as LatentDtype, [rows, K], tensor.name);
    const nonzero = typeof scale === "number" ? scale !== 0 : scale.values.some((v) => v !== 0);
    if (!nonzero) return { tensor: tensor.name, rows, shape, verdict: "zero", detail: `${where} are all zero: no evidence either way` };
    const granularity: Granularity = typeof scale === "number" ? { kind: "tensor" } : scale.groupSize === K ? { kind: "row" } : { kind: "group", size: scale.groupSize };
    const groupSize = granularity.kind === "tensor" ? undefined : granularity.kind === "row" ? K : granularity.size;
    return { tensor: tensor.name, rows, shape, verdict: "ternary", granularity, detail: `${where} are exactly ternary x scale, ${describeGranularity(groupSize, K)}` };
  } catch (error) {
    if (isB158Error(error) && (error.code === "E_STORED_NOT_TERNARY" || error.code === "E_NONFINITE")) {
      return { tensor: tensor.name, rows, shape, verdict: "latent", detail: `${where} are not ternary x scale at any granularity (latent weights)` };
    }
    throw error;
  }
}

/** The group size a granularity means for a tensor with K columns (undefined: one scale per tensor). */
export function groupSizeOf(granularity: Granularity | undefined, K: number): number | undefined {
  if (granularity === undefined || granularity.kind === "tensor") return undefined;
  return granularity.kind === "row" ? K : granularity.size;
}
