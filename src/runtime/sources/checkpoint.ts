import { openCheckpoint, poolingPaths, type Checkpoint, type CheckpointTensor } from "../../checkpoint/open.js";
import { resolveSource } from "../../checkpoint/resolve.js";
import { B158Error } from "../../errors.js";
import { readTensorBytes } from "../../formats/safetensors/read.js";
import { readInto } from "../../io/byte-source.js";
import type { Diagnostic } from "../../model/diagnostics.js";
import { planCheckpoint, type PlanEntry, type TensorPlan } from "../../model/plan.js";
import { fromBf16Bits, fromF16Bits, halfBitsToFloat32 } from "../../pack/float16.js";
import { hfGlobalTensor, hfLayerTensor, type LayerRole } from "../architectures.js";
import { specFromHfConfig } from "../hf-spec.js";
import { poolingFromFiles } from "../pooling.js";
import { absmeanTernarize, absmeanThreshold16, packedScale, unpackQuarters } from "./semantics.js";
import { denseFromBytes, denseInput, payloadReader, uint16View, type LinearWeight, type ModelSource, type TokenizerFiles } from "./source.js";

/**
 * How float BitNet linear weights mean what they mean, as the plan decides from the source's
 * config and values (docs/ternarization.md):
 * - "online": the framework ternarizes them with absmean at every forward pass (transformers'
 *   AutoBitLinear online, 1bitLLM's BitLinear); the runtime does it once at load.
 * - "stored": the values are the effective weights as they are (a fake-quantized export that already
 *   holds scale x ternary). Run as float matrices with BitNet's activation quantization.
 * This option overrides the plan's choice, as `--weights latent|quantized` does for convert.
 */
export type LatentSemantics = "online" | "stored";

export interface CheckpointSourceOptions {
  readonly latent?: LatentSemantics;
}

export async function openCheckpointSource(spec: string, options: CheckpointSourceOptions = {}): Promise<ModelSource> {
  const checkpoint = await openCheckpoint(await resolveSource(spec));
  try {
    return await checkpointSource(checkpoint, options);
  } catch (error) {
    await checkpoint.close();
    throw error;
  }
}

async function checkpointSource(checkpoint: Checkpoint, options: CheckpointSourceOptions): Promise<ModelSource> {
  const label = checkpoint.label;
  const config = checkpoint.config?.raw as Record<string, unknown> | undefined;
  if (config === undefined) {
    throw new B158Error("E_CONFIG_MISSING", `${label}: has no config.json, so the runtime cannot know the model's graph`, { details: { source: label } });
  }
  const plan = await planCheckpoint(checkpoint, options.latent === undefined ? {} : { weights: options.latent === "stored" ? "quantized" : "latent" });
  const errors = plan.diagnostics.filter((d) => d.severity === "error");
  if (errors.length > 0) {
    const code = errors.some((d) => d.code === "E_FORMAT_REFUSED") ? "E_FORMAT_REFUSED" : errors.some((d) => d.code === "E_MODEL_UNSUPPORTED") ? "E_MODEL_UNSUPPORTED" : "E_VALIDATION_FAILED";
    throw new B158Error(code, `${label}: ${errors.map((d) => d.message).slice(0, 3).join("; ")}`, {
      details: { diagnostics: errors },
      hint: "Run b158 validate on it to see every problem.",
    });
  }
  const names = new Set(checkpoint.tensorsByName.keys());
  const entries = new Map(plan.entries.map((e) => [e.name, e]));
  const embedName = hfGlobalTensor(names, "embed");
  if (embedName === undefined) throw new B158Error("E_TENSOR_MISSING", `${label}: has no model.embed_tokens.weight`, { details: { source: label } });
  const text = async (name: string) => ((await checkpoint.files.has(name)) ? checkpoint.files.readText(name) : undefined);
  const generation = await text("generation_config.json");
  let generationConfig: Record<string, unknown> | undefined;
  try {
    generationConfig = generation === undefined ? undefined : (JSON.parse(generation) as Record<string, unknown>);
  } catch {
    generationConfig = undefined;
  }
  // sentence-transformers' files say how an embedding model pools (modules.json -> <Pooling path>/config.json)
  const poolingFiles = new Map<string, string>();
  const modules = await text("modules.json");
  if (modules !== undefined) {
    poolingFiles.set("modules.json", modules);
    for (const path of poolingPaths(modules)) {
      const pooling = await text(`${path}/config.json`);
      if (pooling !== undefined) poolingFiles.set(`${path}/config.json`, pooling);
    }
  }
  const pooling = poolingFromFiles((name) => poolingFiles.get(name), label, plan.family.id === "bitnet-embedding");
  const spec = specFromHfConfig(config, names, {
    file: label,
    vocabSize: checkpoint.tensorsByName.get(embedName)!.shape[0]!,
    hasHead: hfGlobalTensor(names, "head") !== undefined,
    generationConfig,
    ...(pooling === undefined ? {} : { pooling }),
  });
  const tokenizerModel = (await checkpoint.files.has("tokenizer.model")) ? await readWhole(checkpoint, "tokenizer.model") : undefined;
  const tokenizerJson = await text("tokenizer.json");
  const tokenizerConfig = await text("tokenizer_config.json");
  const tokenizerFiles: TokenizerFiles = {
    ...(tokenizerJson === undefined ? {} : { tokenizerJson }),
    ...(tokenizerConfig === undefined ? {} : { tokenizerConfig }),
    ...(tokenizerModel === undefined ? {} : { tokenizerModel }),
  };
  const diagnostics: Diagnostic[] = plan.diagnostics.filter((d) => d.severity !== "error");

  const tensor = (name: string): CheckpointTensor => checkpoint.tensorsByName.get(name)!;
  const bytesOf = async (t: CheckpointTensor) => readTensorBytes(await checkpoint.source(t.shard), t, t.byteLength);
  // latent weights are read into one buffer, reused tensor after tensor (fresh memory costs)
  let reusable = new Uint8Array(0);
  const reusedBytesOf = async (t: CheckpointTensor) => {
    if (reusable.byteLength < t.byteLength) reusable = new Uint8Array(t.byteLength);
    const into = reusable.subarray(0, t.byteLength);
    await readInto(await checkpoint.source(t.shard), t.fileOffset, into);
    return into;
  };
  const reader = (t: CheckpointTensor) => payloadReader(t.byteLength, async (offset, into) => readInto(await checkpoint.source(t.shard), t.fileOffset + offset, into));
  const layerName = (role: LayerRole, layer: number): string => {
    const name = hfLayerTensor(names, role, layer);
    if (name === undefined) throw new B158Error("E_TENSOR_MISSING", `${label}: layer ${layer} has no ${role} tensor`, { details: { source: label, layer, role } });
    return name;
  };
  const floats = async (name: string) => toFloat32(await bytesOf(tensor(name)), tensor(name).dtype);

  return {
    label,
    kind: "checkpoint",
    spec,
    tokenizerFiles,
    lossy: false,
    diagnostics,
    async vector(role, layer) {
      return floats(role === "norm" ? (hfGlobalTensor(names, "norm") ?? "model.norm.weight") : layerName(role, layer ?? 0));
    },
    async linear(role, layer) {
      const name = layerName(role, layer);
      return linearWeight(checkpoint, plan, entries.get(name)!, bytesOf, reusedBytesOf);
    },
    async matrix(role) {
      const name = hfGlobalTensor(names, role);
      if (name === undefined) throw new B158Error("E_TENSOR_MISSING", `${label}: has no ${role === "embed" ? "token embedding" : "output head"}`, { details: { source: label } });
      const t = tensor(name);
      const [rows, cols] = [t.shape[0]!, t.shape.slice(1).reduce((a, b) => a * b, 1)];
      return denseInput(t.dtype, rows, cols, reader(t), () => bytesOf(t), (b) => toFloat32(b, t.dtype));
    },
    close: () => checkpoint.close(),
  };
}

async function linearWeight(
  checkpoint: Checkpoint,
  plan: TensorPlan,
  entry: PlanEntry,
  bytesOf: (t: CheckpointTensor) => Promise<Uint8Array>,
  reusedBytesOf: (t: CheckpointTensor) => Promise<Uint8Array>,
): Promise<LinearWeight> {
  const t = checkpoint.tensorsByName.get(entry.name)!;
  const [rows, cols] = entry.logicalShape as [number, number];
  if (entry.action === "repack") {
    const scaleTensor = checkpoint.tensorsByName.get(entry.scaleTensor!)!;
    const weightScale = scalar(await bytesOf(scaleTensor), scaleTensor.dtype);
    const convention = plan.family.convention === "multiply" ? "multiply" : "divide";
    const codes = unpackQuarters(await bytesOf(t), t.shape[0]!, cols, rows, entry.name);
    return { kind: "ternary", weight: { kind: "codes", rows, cols, codes, scales: { granularity: "tensor", scale: packedScale(weightScale, convention, entry.scaleTensor!) } } };
  }
  // a BitNet linear ternarized per forward: 16-bit latent weights become a threshold on their bit
  // patterns, which the kernels apply while re-laying them (no int8 copy of the tensor)
  if (entry.action === "ternarize" && plan.family.id !== "generic" && (t.dtype === "BF16" || t.dtype === "F16")) {
    const bytes = await reusedBytesOf(t);
    const bits = new Uint16Array(bytes.buffer, bytes.byteOffset, rows * cols);
    const { threshold, scale } = absmeanThreshold16(bits, t.dtype, entry.name);
    return { kind: "ternary", weight: { kind: "threshold16", rows, cols, bits, threshold, scales: { granularity: "tensor", scale } } };
  }
  const bytes = await bytesOf(t);
  // stored weights are the effective weights, run as they are: by a BitNet linear (int8 input) in a
  // BitNet family (offline float weights), by a plain nn.Linear in a fake-quantized model
  if (entry.action === "extract") return { kind: "dense", weight: denseFromBytes(bytes, t.dtype, rows, cols, (b) => toFloat32(b, t.dtype)), bitnet: plan.family.id !== "fake-quantized" };
  // a BitNet linear ternarized per forward; a plain float linear of a model that is not ternary
  if (entry.action === "ternarize" && plan.family.id !== "generic") {
    const { codes, scale } = absmeanTernarize(bytes, t.dtype, rows * cols, entry.name);
    return { kind: "ternary", weight: { kind: "codes", rows, cols, codes, scales: { granularity: "tensor", scale } } };
  }
  return { kind: "dense", weight: denseFromBytes(bytes, t.dtype, rows, cols, (b) => toFloat32(b, t.dtype)), bitnet: false };
}

async function readWhole(checkpoint: Checkpoint, name: string): Promise<Uint8Array> {
  const source = await checkpoint.files.open(name);
  try {
    return await source.read(0, source.size);
  } finally {
    await source.close();
  }
}

function scalar(bytes: Uint8Array, dtype: string): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === "F32") return view.getFloat32(0, true);
  if (dtype === "F64") return view.getFloat64(0, true);
  if (dtype === "BF16") return fromBf16Bits(view.getUint16(0, true));
  if (dtype === "F16") return fromF16Bits(view.getUint16(0, true));
  throw new B158Error("E_PACKED_SHAPE", `a weight_scale of dtype ${dtype} is not a float`);
}

/** Float tensor bytes (F32, F16, BF16, F64) as float32. */
function toFloat32(bytes: Uint8Array, dtype: string): Float32Array {
  switch (dtype) {
    case "F32": {
      const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
      return new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >> 2);
    }
    case "F16":
    case "BF16":
      return halfBitsToFloat32(uint16View(bytes), dtype === "F16" ? "f16" : "bf16");
    case "F64": {
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      return Float32Array.from({ length: bytes.byteLength / 8 }, (_, i) => view.getFloat64(i * 8, true));
    }
    default:
      throw new B158Error("E_MODEL_UNSUPPORTED", `a tensor of dtype ${dtype} cannot be read as floats by the runtime`);
  }
}
