import type { Checkpoint, CheckpointTensor } from "../checkpoint/open.js";
import { DTYPE_BYTES, isFloatDtype, type Dtype } from "../formats/safetensors/dtypes.js";
import { checkEligibility, LAYOUT_IDS, type Eligibility, type LayoutId } from "../pack/layouts.js";
import { modelActivationDiagnostics } from "./activation.js";
import type { Diagnostic } from "./diagnostics.js";
import { expectedShape, modelDims, type ModelDims } from "./dims.js";
import { detectFamily, type Family, type WeightSemantics, type WeightsOverride } from "./family.js";
import { absentRanges, BITNET_LINEAR, ggufName, globToRegExp, layerIndex, WEIGHT_SCALE_SUFFIX } from "./names.js";
import { affineQuantized, checkpointRefusal, sampleAffine2Bit, type AffineSample } from "./refusals.js";
import { groupSizeOf, sampleTensor, type ValueSample } from "./sample.js";

/**
 * The tensor plan: the single source of truth for conversion. For every tensor: its role, what
 * conversion will do with it, and, for ternary linears, which layouts can hold its shape and why not.
 */

export type TensorRole = "ternary-linear" | "embedding" | "lm-head" | "norm" | "scale" | "other";
/**
 * - ternarize: latent float weights (online semantics), absmean rule at conversion.
 * - repack: already ternary (packed U8 + weight_scale), unpacked and repacked losslessly.
 * - extract: float weights used as stored (stored semantics), already exactly t x s: codes and
 *   scales read exactly, never re-quantized (a tensor that is not is an error naming it).
 * - keep: stays float (source dtype unless the user asks otherwise).
 * - consume: a weight_scale folded into its linear's per-tensor scale.
 */
export type TensorAction = "ternarize" | "repack" | "extract" | "keep" | "consume";

export interface PlanEntry {
  readonly name: string;
  readonly ggufName: string | undefined;
  readonly shard: string;
  readonly dtype: Dtype;
  /** Shape as stored. */
  readonly shape: readonly number[];
  /** Shape of the weight it represents: [out, in] for packed weights ([out/4, in] stored). */
  readonly logicalShape: readonly number[];
  readonly parameters: number;
  readonly role: TensorRole;
  readonly action: TensorAction;
  /** The weight_scale tensor consumed by this repacked linear. */
  readonly scaleTensor?: string;
  /** Ternary tensors: what the source's framework does with the weights (docs/ternarization.md). */
  readonly semantics?: WeightSemantics;
  /**
   * Stored ternary tensors: the scale granularity the sample showed (weights per group along K;
   * absent: one scale per tensor). Conversion detects each tensor's own exactly.
   */
  readonly groupSize?: number;
  /** Ternary tensors (linears, and the embedding / lm_head of a ternary source): eligibility per layout. */
  readonly layouts?: Readonly<Record<LayoutId, Eligibility>>;
}

export interface LayoutEstimate {
  readonly layout: LayoutId;
  /** Estimated bytes of tensor payloads (headers, tokenizer and alignment excluded). */
  readonly bytes: number;
  readonly bitsPerWeight: number;
  readonly ternaryBytes: number;
  readonly ternaryBitsPerWeight: number;
  /** Ternary tensors this layout cannot hold; the estimate counts them as F16 (--fallback f16). */
  readonly ineligible: readonly string[];
}

export interface TensorPlan {
  readonly family: Family;
  readonly dims: ModelDims;
  readonly entries: readonly PlanEntry[];
  readonly parametersByRole: Readonly<Record<TensorRole, number>>;
  readonly dtypes: Readonly<Partial<Record<Dtype, number>>>;
  readonly estimates: readonly LayoutEstimate[];
  readonly diagnostics: readonly Diagnostic[];
}

export interface PlanOptions {
  /** Globs naming tensors to ternarize in a generic (family 5) model. */
  readonly ternarize?: readonly string[];
  /** Override the float linears' semantics (`--weights`): latent (online) or quantized (stored). */
  readonly weights?: WeightsOverride;
  /** Keep a ternary source's embedding and lm_head as float (an explicit --embeddings dtype). */
  readonly floatHeads?: boolean;
  /** Bounded reads of the values (planCheckpoint makes them): the first float linear's, and the embedding's / lm_head's. */
  readonly samples?: { readonly linear?: ValueSample; readonly heads?: ReadonlyMap<string, ValueSample>; readonly affine?: AffineSample };
}

/**
 * buildPlan with the evidence of the values: reads about 1 MiB of the first float linear's first
 * rows (and, when those are exactly ternary, of the embedding and lm_head), so the plan can tell
 * fake-quantized weights from latent ones (sample.ts). Bounded whatever the model's size.
 */
export async function planCheckpoint(checkpoint: Checkpoint, options: PlanOptions = {}): Promise<TensorPlan> {
  const notConverted = checkpoint.config?.quantization?.modulesToNotConvert ?? [];
  const first = checkpoint.tensors.find((t) => BITNET_LINEAR.test(t.name) && isFloatDtype(t.dtype) && t.shape.length === 2 && !excludedModule(t.name, notConverted));
  const linear = first === undefined ? undefined : await sampleTensor(checkpoint, first);
  const heads = new Map<string, ValueSample>();
  if (linear?.verdict === "ternary" || options.weights === "quantized") {
    for (const t of checkpoint.tensors) {
      if (headRole(t.name) === undefined) continue;
      const sample = await sampleTensor(checkpoint, t);
      if (sample !== undefined) heads.set(t.name, sample);
    }
  }
  // an MLX-style 2-bit checkpoint is refused either way; its first row says whether it is ternary
  const packed = affineQuantized(checkpoint.tensorsByName).find((n) => BITNET_LINEAR.test(n));
  const affine = packed === undefined ? undefined : await sampleAffine2Bit(checkpoint, packed);
  return buildPlan(checkpoint, { ...options, samples: { ...(linear === undefined ? {} : { linear }), heads, ...(affine === undefined ? {} : { affine }) } });
}

function excludedModule(name: string, notConverted: readonly string[]): boolean {
  const module = name.replace(/\.weight$/, "");
  return notConverted.some((m) => module === m || module.endsWith(`.${m}`));
}

/** The token embedding or the output head, by name. */
function headRole(name: string): "embedding" | "lm-head" | undefined {
  if (/(^|\.)(embed_tokens|wte|tok_embeddings|word_embeddings)\.weight$/.test(name)) return "embedding";
  if (/(^|\.)(lm_head|output)\.weight$/.test(name)) return "lm-head";
  return undefined;
}

const ROLES: readonly TensorRole[] = ["ternary-linear", "embedding", "lm-head", "norm", "scale", "other"];

export function buildPlan(checkpoint: Checkpoint, options: PlanOptions = {}): TensorPlan {
  const diagnostics: Diagnostic[] = [...checkpoint.diagnostics];
  const { config, tensorsByName } = checkpoint;
  const linearSample = options.samples?.linear;
  const refusal = checkpointRefusal(config, tensorsByName, options.samples?.affine);
  if (refusal !== undefined) diagnostics.push(refusal);
  const family = detectFamily(config, tensorsByName, diagnostics, {
    ...(options.weights === undefined ? {} : { weights: options.weights }),
    ...(linearSample === undefined ? {} : { sample: linearSample }),
  });
  const context: PlanContext = {
    family,
    dims: modelDims(config, [...tensorsByName.keys()]),
    globs: (options.ternarize ?? []).map(globToRegExp),
    notConverted: config?.quantization?.modulesToNotConvert ?? [],
    granularity: linearSample?.verdict === "ternary" ? linearSample.granularity : undefined,
    heads: family.semantics === "stored" && options.floatHeads !== true ? (options.samples?.heads ?? new Map()) : new Map(),
    modelType: config?.modelType,
    refused: refusal !== undefined,
  };
  const { dims, globs } = context;

  if (config?.quantization?.useRmsNorm) {
    diagnostics.push({
      severity: "error",
      code: "E_MODEL_UNSUPPORTED",
      message: "quantization_config.use_rms_norm is true: every BitLinear carries its own RMSNorm, which no llama.cpp or bitnet.cpp architecture can express",
    });
  }
  if (family.id === "generic" && refusal === undefined) {
    diagnostics.push(
      globs.length === 0
        ? {
            severity: "warning",
            code: "W_GENERIC_NO_TERNARIZE",
            message: "not a BitNet checkpoint: nothing will be ternarized. Name the tensors with --ternarize '<glob>' (lossy post-training ternarization)",
          }
        : {
            severity: "warning",
            code: "W_LOSSY_TERNARIZATION",
            message: "post-training ternarization of a model not trained ternary is lossy: expect a large quality drop",
          },
    );
  }

  const entries: PlanEntry[] = [];
  const consumedScales = new Set<string>();
  for (const tensor of checkpoint.tensors) {
    const entry = planTensor(tensor, tensorsByName, context, diagnostics);
    if (entry.scaleTensor !== undefined) consumedScales.add(entry.scaleTensor);
    entries.push(entry);
  }
  // A weight_scale is consumed only by a packed sibling; an orphan is kept and reported.
  const finalEntries = entries.map((entry) => {
    if (entry.role !== "scale" || consumedScales.has(entry.name)) return entry;
    diagnostics.push({ severity: "warning", code: "W_ORPHAN_SCALE", tensor: entry.name, message: `weight_scale "${entry.name}" has no packed U8 weight beside it; kept as a float tensor` });
    return { ...entry, role: "other" as const, action: "keep" as const };
  });

  // a refused checkpoint's packed shapes say nothing more
  if (refusal === undefined) {
    checkShapes(finalEntries, dims, config !== undefined, diagnostics);
    checkLayers(finalEntries, family, dims, diagnostics);
  }
  // runtimes that would compute the wrong FFN activation for this model (2B-4T's relu2 as SiLU)
  diagnostics.push(...modelActivationDiagnostics({ family: family.id, hfArchitecture: config?.architectures[0], config: config?.raw as Record<string, unknown> | undefined }));

  const parametersByRole = Object.fromEntries(ROLES.map((r) => [r, 0])) as Record<TensorRole, number>;
  const dtypes: Partial<Record<Dtype, number>> = {};
  for (const entry of finalEntries) {
    parametersByRole[entry.role] += entry.parameters;
    dtypes[entry.dtype] = (dtypes[entry.dtype] ?? 0) + 1;
  }
  return {
    family,
    dims,
    entries: finalEntries,
    parametersByRole,
    dtypes,
    estimates: LAYOUT_IDS.map((layout) => estimate(layout, finalEntries)),
    diagnostics,
  };
}

interface PlanContext {
  readonly family: Family;
  readonly dims: ModelDims;
  readonly globs: readonly RegExp[];
  readonly notConverted: readonly string[];
  /** Stored semantics: the granularity the linear sample showed. */
  readonly granularity: ValueSample["granularity"];
  /** Stored semantics: samples of the embedding / lm_head (kept ternary when theirs are ternary). */
  readonly heads: ReadonlyMap<string, ValueSample>;
  /** config.json's model_type: picks GGUF names that depend on the architecture (Gemma3's norms). */
  readonly modelType: string | undefined;
  /** A checkpoint b158 refuses (E_FORMAT_REFUSED): its packed tensors are not reported one by one. */
  readonly refused: boolean;
}

function planTensor(tensor: CheckpointTensor, tensors: ReadonlyMap<string, CheckpointTensor>, context: PlanContext, diagnostics: Diagnostic[]): PlanEntry {
  const { family, dims, globs, notConverted } = context;
  const base = {
    name: tensor.name,
    ggufName: ggufName(tensor.name, context.modelType),
    shard: tensor.shard,
    dtype: tensor.dtype,
    shape: tensor.shape,
    logicalShape: tensor.shape,
    parameters: tensor.elements,
  };
  if (tensor.name.endsWith(WEIGHT_SCALE_SUFFIX)) return { ...base, role: "scale", action: "consume" };

  const module = tensor.name.replace(/\.weight$/, "");
  const excluded = excludedModule(tensor.name, notConverted);
  const isLinearName = family.id === "generic" ? globs.some((g) => g.test(tensor.name)) : BITNET_LINEAR.test(tensor.name);
  const scaleName = `${module}${WEIGHT_SCALE_SUFFIX}`;

  if (isLinearName && !excluded) {
    if (tensor.dtype === "U8") {
      if (!tensors.has(scaleName)) {
        diagnostics.push({
          severity: "error",
          code: "E_PACKED_NO_SCALE",
          tensor: tensor.name,
          message: `U8 linear weight "${tensor.name}" has no "${scaleName}": it cannot be unpacked to a scaled ternary weight`,
        });
        return { ...base, role: "other", action: "keep" };
      }
      return packedEntry(base, tensor, scaleName, tensors, dims, diagnostics);
    }
    if (tensor.shape.length === 2 && isFloatDtype(tensor.dtype)) {
      // a generic model's --ternarize'd tensors are ternarized (online) at the user's request
      const stored = family.id !== "generic" && family.semantics === "stored";
      return stored ? storedEntry(base, "ternary-linear", context.granularity) : { ...base, role: "ternary-linear", action: "ternarize", semantics: "online", layouts: eligibility(tensor.shape as [number, number]) };
    }
    if (!context.refused) diagnostics.push({
      severity: family.id === "generic" ? "error" : "warning",
      code: "W_NOT_TERNARIZABLE",
      tensor: tensor.name,
      message: `"${tensor.name}" is ${tensor.dtype} ${JSON.stringify(tensor.shape)}: only 2-D F32/F16/BF16/F64 weights can be ternarized; kept as is`,
    });
  }
  const head = headRole(tensor.name);
  const headSample = context.heads.get(tensor.name);
  // a ternary source's embedding / head stays ternary, only when its own values are ternary
  if (head !== undefined && headSample?.verdict === "ternary" && tensor.shape.length === 2) return storedEntry(base, head, headSample.granularity);
  const role: TensorRole = head ?? (tensor.shape.length === 1 && /(norm|_ln|layernorm)[^.]*\.(weight|bias)$/.test(tensor.name) ? "norm" : "other");
  return { ...base, role, action: "keep" };
}

/** A float tensor used as stored: read exactly at conversion; eligibility for the granularity the sample showed. */
function storedEntry(base: Omit<PlanEntry, "role" | "action">, role: TensorRole, granularity: ValueSample["granularity"]): PlanEntry {
  const shape = base.shape as [number, number];
  const groupSize = groupSizeOf(granularity, shape[1]);
  return { ...base, role, action: "extract", semantics: "stored", ...(groupSize === undefined ? {} : { groupSize }), layouts: eligibility(shape, groupSize) };
}

function packedEntry(
  base: Omit<PlanEntry, "role" | "action">,
  tensor: CheckpointTensor,
  scaleName: string,
  tensors: ReadonlyMap<string, CheckpointTensor>,
  dims: ModelDims,
  diagnostics: Diagnostic[],
): PlanEntry {
  const scale = tensors.get(scaleName)!;
  if (tensor.shape.length !== 2) {
    diagnostics.push({ severity: "error", code: "E_PACKED_SHAPE", tensor: tensor.name, message: `packed weight "${tensor.name}" has shape ${JSON.stringify(tensor.shape)}; expected [out/4, in]` });
    return { ...base, role: "other", action: "keep" };
  }
  if (scale.elements !== 1 || !isFloatDtype(scale.dtype)) {
    diagnostics.push({
      severity: "error",
      code: "E_PACKED_SHAPE",
      tensor: scaleName,
      message: `"${scaleName}" is ${scale.dtype} ${JSON.stringify(scale.shape)}; a per-tensor weight_scale must be one float element`,
    });
  }
  const [packedRows, cols] = tensor.shape as [number, number];
  // transformers packs ceil(out/4) rows; config.json tells the true out when out % 4 != 0.
  const configured = expectedShape(tensor.name, dims)?.[0];
  const out = configured !== undefined && Math.ceil(configured / 4) === packedRows ? configured : packedRows * 4;
  const logicalShape: [number, number] = [out, cols];
  return {
    ...base,
    logicalShape,
    parameters: out * cols,
    role: "ternary-linear",
    action: "repack",
    semantics: "packed",
    scaleTensor: scaleName,
    layouts: eligibility(logicalShape),
  };
}

function eligibility(shape: readonly [number, number], groupSize?: number): Record<LayoutId, Eligibility> {
  return Object.fromEntries(LAYOUT_IDS.map((layout) => [layout, checkEligibility(layout, shape, groupSize === undefined ? {} : { groupSize })])) as Record<LayoutId, Eligibility>;
}

function checkShapes(entries: readonly PlanEntry[], dims: ModelDims, haveConfig: boolean, diagnostics: Diagnostic[]): void {
  if (!haveConfig) return;
  for (const entry of entries) {
    const expected = expectedShape(entry.name, dims);
    if (expected === undefined) continue;
    const actual = entry.logicalShape;
    const mismatch = expected.length !== actual.length || expected.some((d, i) => d !== undefined && d !== actual[i]);
    if (mismatch) {
      const shown = expected.map((d) => (d === undefined ? "?" : String(d))).join(", ");
      diagnostics.push({
        severity: "error",
        code: "E_SHAPE_CONFIG",
        tensor: entry.name,
        message: `"${entry.name}" has shape ${JSON.stringify(actual)} but config.json implies [${shown}]`,
      });
    }
  }
}

const LAYER_LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"];

function checkLayers(entries: readonly PlanEntry[], family: Family, dims: ModelDims, diagnostics: Diagnostic[]): void {
  if (family.id === "generic" || dims.layers === undefined) return;
  const names = new Set(entries.map((e) => e.name));
  const prefix = entries.some((e) => e.name.startsWith("model.layers.")) ? "model.layers" : "layers";
  // Work and output follow the layers the weights hold, never num_hidden_layers (which may claim 2^32).
  const present = new Set<number>();
  for (const e of entries) {
    const layer = layerIndex(e.name);
    if (layer !== undefined) present.add(layer);
  }
  const layers = [...present].sort((a, b) => a - b);
  const held = layers.length === 0 ? 0 : layers.at(-1)! + 1;
  if (held !== dims.layers) {
    diagnostics.push({
      severity: "error",
      code: "E_SHAPE_CONFIG",
      message: `config.json says num_hidden_layers = ${dims.layers} but the weights hold ${held} layers`,
    });
  }
  const checked = Math.min(dims.layers, held);
  // BitNet-embedding: every projection has its input norm (the graph applies all seven)
  const suffixes = family.id === "bitnet-embedding" ? ["weight", "norm.weight"] : ["weight"];
  for (const layer of layers) {
    if (layer >= checked) break;
    for (const linear of LAYER_LINEARS) {
      for (const suffix of suffixes) {
        const name = `${prefix}.${layer}.${linear}.${suffix}`;
        if (!names.has(name)) diagnostics.push({ severity: "error", code: "E_TENSOR_MISSING", tensor: name, message: `layer ${layer} has no "${name}"` });
      }
    }
  }
  for (const [first, last] of absentRanges(layers, checked)) {
    const name = `${prefix}.${first}.${LAYER_LINEARS[0]}.weight`;
    diagnostics.push({ severity: "error", code: "E_TENSOR_MISSING", tensor: name, message: `${first === last ? `layer ${first} has` : `layers ${first}-${last} have`} no tensors at all (no "${name}" or any of the seven linears)` });
  }
}

/** F16 bytes per weight for ternary tensors a layout cannot hold (the --fallback f16 estimate). */
const FALLBACK_BYTES = 2;

function estimate(layout: LayoutId, entries: readonly PlanEntry[]): LayoutEstimate {
  let bytes = 0;
  let weights = 0;
  let ternaryBytes = 0;
  let ternaryWeights = 0;
  const ineligible: string[] = [];
  for (const entry of entries) {
    if (entry.role === "scale" && entry.action === "consume") continue;
    weights += entry.parameters;
    if (entry.layouts === undefined) {
      bytes += entry.parameters * DTYPE_BYTES[entry.dtype];
      continue;
    }
    const fit = entry.layouts![layout];
    const tensorBytes = fit.eligible ? fit.payloadBytes : entry.parameters * FALLBACK_BYTES;
    if (!fit.eligible) ineligible.push(entry.name);
    bytes += tensorBytes;
    ternaryBytes += tensorBytes;
    ternaryWeights += entry.parameters;
  }
  return {
    layout,
    bytes,
    bitsPerWeight: weights === 0 ? 0 : (bytes * 8) / weights,
    ternaryBytes,
    ternaryBitsPerWeight: ternaryWeights === 0 ? 0 : (ternaryBytes * 8) / ternaryWeights,
    ineligible,
  };
}
