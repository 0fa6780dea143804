import { B158Error } from "../../errors.js";
import { openGgufFile, type GgufFile, type GgufTensorInfo } from "../../formats/gguf/read.js";
import { unpackLayout } from "../../pack/codec.js";
import { halfBitsToFloat32 } from "../../pack/float16.js";
import { dequantizeQ8_0 } from "../../pack/q8_0.js";
import { ACTIVATION_QUANTIZATION_KEY } from "../../formats/gguf/targets.js";
import { GLOBAL_TENSORS, LAYER_TENSORS, type LayerRole } from "../architectures.js";
import type { DenseWeightInput, TernaryWeightInput } from "../kernels/api.js";
import { checkSpec, modelError, num, type Activation, type ArchitectureId, type ModelSpec, type Pooling } from "../spec.js";
import { tq1BlockScales } from "./b158.js";
import { denseInput, float32View, payloadReader, uint16View, type LinearWeight, type ModelSource } from "./source.js";

/**
 * A GGUF that b158 wrote (arch bitnet, bitnet-b1.58, llama, qwen3, gemma3 or minicpm), run with
 * Hugging Face semantics:
 * - arch llama and minicpm hold Q/K rows permuted per head for llama.cpp's NORM rope; the runtime
 *   rotates adjacent pairs for them (rope layout "interleaved"), which computes the same attention;
 * - `<arch>.hidden_activation` is honoured (b158 writes relu2 for 2B-4T models, which mainline
 *   llama.cpp ignores): the runtime computes what the source model computes;
 * - each architecture's graph as llama.cpp (and, for `*_norm_in` tensors, bitnet.cpp's embedding
 *   fork) builds it: gemma3 norms hold w + 1 already, its embedding is scaled by sqrt(hidden) and
 *   its attention by 1 / sqrt(head_dim) (the embedding converter writes neither key nor sliding
 *   window, so every layer attends globally, as the fork computes); minicpm's scales come from its
 *   embedding_scale / residual_scale / logit_scale keys and its LongRoPE factors from its
 *   rope_factors_short tensor; `<arch>.pooling_type` makes it an embedding model;
 * - TQ2_0 and I2_S (bitnet.cpp's table, 128-weight blocks: GGUF does not record the ARM variant)
 *   payloads go to the kernels as they are; TQ1_0 and Q2_0 are decoded once with each block's d
 *   (also for a ternary token_embd / output); F32, F16, BF16 and Q8_0 matrices stay floats. The
 *   projections quantize their input as `b158.activation_quantization` says (int8 per token for
 *   BitNet models, none for fake-quantized ones), else as the architecture implies; TL1/TL2 files
 *   are refused (their tiling is not recorded in the GGUF: run the .b158).
 */
export async function openGgufSource(path: string): Promise<ModelSource> {
  const file = await openGgufFile(path);
  try {
    return ggufSource(file, await longRopeFactors(file));
  } catch (error) {
    await file.close();
    throw error;
  }
}

const BITNET_ARCHS = ["bitnet", "bitnet-b1.58", "bitnet-25"];
const OTHER_ARCHS: readonly ArchitectureId[] = ["llama", "qwen3", "gemma3", "minicpm"];
/** llama.cpp's pooling_type values. */
const POOLING: Readonly<Record<number, Pooling>> = { 1: "mean", 2: "cls", 3: "last" };

function ggufSpec(file: GgufFile, longRopeFactors: Float32Array | undefined): ModelSpec {
  const arch = file.scalar("general.architecture");
  if (typeof arch !== "string" || !(BITNET_ARCHS.includes(arch) || (OTHER_ARCHS as readonly string[]).includes(arch))) {
    throw modelError(file.name, `GGUF architecture ${JSON.stringify(arch)} is not one the runtime runs (bitnet, bitnet-b1.58, bitnet-25, llama, qwen3, gemma3, minicpm)`);
  }
  const key = (k: string) => num(typeof file.scalar(`${arch}.${k}`) === "bigint" ? Number(file.scalar(`${arch}.${k}`)) : file.scalar(`${arch}.${k}`));
  const embed = file.tensors.find((t) => t.name === GLOBAL_TENSORS.embed.gguf);
  if (embed === undefined) throw new B158Error("E_TENSOR_MISSING", `${file.name}: has no token_embd.weight`, { details: { file: file.name } });
  const hidden = key("embedding_length") ?? 0;
  const heads = key("attention.head_count") ?? 0;
  const layers = key("block_count") ?? 0;
  const act = file.scalar(`${arch}.hidden_activation`);
  const bitnetArch = BITNET_ARCHS.includes(arch);
  const relu2 = act === "relu2" || (act === undefined && bitnetArch && arch !== "bitnet");
  const activation: Activation = relu2 ? "relu2" : act === "gelu_pytorch_tanh" || (act === undefined && arch === "gemma3") ? "gelu_tanh" : "silu";
  if (act !== undefined && act !== "relu2" && act !== "silu" && act !== "gelu_pytorch_tanh") throw modelError(file.name, `${arch}.hidden_activation ${JSON.stringify(act)} is not supported (silu, relu2 and gelu_pytorch_tanh are)`);
  const architecture: ArchitectureId = bitnetArch ? (relu2 ? "bitnet-b1.58" : "bitnet") : (arch as ArchitectureId);
  const id = (k: string) => {
    const v = file.scalar(`tokenizer.ggml.${k}_token_id`);
    return typeof v === "number" ? v : undefined;
  };
  const eos = id("eos");
  const headDim = key("attention.key_length") ?? (heads > 0 ? hidden / heads : 0);
  const maxPositions = key("context_length") ?? 2048;
  const pooling = POOLING[key("pooling_type") ?? 0];
  const logitScale = key("logit_scale");
  return checkSpec(
    {
      architecture,
      hiddenSize: hidden,
      intermediateSize: key("feed_forward_length") ?? 0,
      layers,
      heads,
      kvHeads: key("attention.head_count_kv") ?? heads,
      headDim,
      vocabSize: embed.ne[1] ?? 0,
      rmsNormEps: key("attention.layer_norm_rms_epsilon") ?? 1e-6,
      rope: {
        theta: key("rope.freq_base") ?? 10000,
        layout: arch === "llama" || arch === "minicpm" ? "interleaved" : "half",
        ...(longRopeFactors === undefined ? {} : { scaling: { type: "longrope" as const, factors: [...longRopeFactors], attentionFactor: key("rope.scaling.attn_factor") ?? 1 } }),
      },
      activation,
      subNorms: bitnetArch,
      qkNorm: arch === "qwen3" || arch === "gemma3",
      projectionNorms: file.tensors.some((t) => /^blk\.\d+\.\w+_norm_in\.weight$/.test(t.name)),
      sandwichNorms: arch === "gemma3",
      // gemma3 GGUFs hold w + 1 (llama.cpp's converters add it)
      normOffset: 0,
      embeddingScale: arch === "gemma3" ? Math.fround(Math.sqrt(hidden)) : arch === "minicpm" ? (key("embedding_scale") ?? 12) : 1,
      residualScale: arch === "minicpm" ? (key("residual_scale") ?? 1.4 / Math.sqrt(layers)) : 1,
      // llama.cpp's minicpm divides the logits by logit_scale (the converter writes hidden / dim_model_base)
      logitScale: arch === "minicpm" ? 1 / (logitScale ?? hidden / 256) : 1,
      attentionScale: 1 / Math.sqrt(headDim),
      tiedHead: !file.tensors.some((t) => t.name === GLOBAL_TENSORS.head.gguf),
      maxPositions,
      bosTokenId: id("bos"),
      eosTokenIds: eos === undefined ? [] : [eos],
      ...(pooling === undefined ? {} : { pooling: { mode: pooling, normalize: true } }),
    },
    file.name,
  );
}

/**
 * A minicpm GGUF's LongRoPE factors: llama.cpp's get_rope_factors takes rope_factors_long past
 * rope.scaling.original_context_length (default: the context length), else rope_factors_short.
 */
async function longRopeFactors(file: GgufFile): Promise<Float32Array | undefined> {
  const arch = String(file.scalar("general.architecture"));
  if (arch !== "minicpm") return undefined;
  const maxPositions = num(file.scalar(`${arch}.context_length`)) ?? 0;
  const original = num(file.scalar(`${arch}.rope.scaling.original_context_length`)) ?? maxPositions;
  const t = file.tensors.find((x) => x.name === (maxPositions > original ? "rope_factors_long.weight" : "rope_factors_short.weight"));
  if (t === undefined) return undefined;
  if (t.type.name !== "F32") throw modelError(file.name, `"${t.name}" is ${t.type.name}, not F32`);
  return float32View(await file.readTensor(t.name)).slice();
}

function ggufSource(file: GgufFile, factors: Float32Array | undefined): ModelSource {
  const spec = ggufSpec(file, factors);
  // BitNet linears quantize their input per token; b158 records which its GGUF holds (fake-quantized models run plain linears)
  const declared = file.scalar(ACTIVATION_QUANTIZATION_KEY);
  const bitnetLinears = declared === "none" ? false : declared === "int8-per-token" ? true : !["qwen3", "gemma3", "minicpm"].includes(spec.architecture) || spec.projectionNorms;
  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  const layerTensor = (role: LayerRole, layer: number): GgufTensorInfo => {
    const t = byName.get(`blk.${layer}.${LAYER_TENSORS[role].gguf}`);
    if (t === undefined) throw new B158Error("E_TENSOR_MISSING", `${file.name}: has no blk.${layer}.${LAYER_TENSORS[role].gguf}`, { details: { file: file.name, layer, role } });
    return t;
  };
  const global = (role: "embed" | "norm" | "head"): GgufTensorInfo => {
    const t = byName.get(GLOBAL_TENSORS[role].gguf);
    if (t === undefined) throw new B158Error("E_TENSOR_MISSING", `${file.name}: has no ${GLOBAL_TENSORS[role].gguf}`, { details: { file: file.name } });
    return t;
  };
  const reader = (t: GgufTensorInfo) => payloadReader(t.length, (offset, into) => file.readTensorInto(t.name, offset, into));
  const dense = async (t: GgufTensorInfo): Promise<DenseWeightInput> => {
    const [cols, rows] = [t.ne[0]!, t.ne.slice(1).reduce((a, b) => a * b, 1)];
    return denseInput(t.type.name, rows, cols, reader(t), () => file.readTensor(t.name), (bytes) => {
      if (t.type.name === "Q8_0") return dequantizeQ8_0(bytes);
      throw modelError(file.name, `tensor "${t.name}" is ${t.type.name}, which the runtime cannot read as a float matrix`);
    });
  };
  /** A ternary tensor's payload as the kernels take it (TQ2_0 and I2_S still in the file), or undefined for a float one. */
  const ternary = async (t: GgufTensorInfo): Promise<TernaryWeightInput | undefined> => {
    const [cols, rows] = [t.ne[0]!, t.ne.slice(1).reduce((a, b) => a * b, 1)];
    switch (t.type.name) {
      case "TQ2_0":
        return { kind: "tq2_0", rows, cols, payload: reader(t) };
      case "I2_S":
        return { kind: "i2_s", rows, cols, blockSize: 128, payload: reader(t) };
      case "TQ1_0": {
        const payload = await file.readTensor(t.name);
        const { codes } = unpackLayout({ layout: "tq1_0", blockSize: 256 }, payload, [rows, cols], undefined, { file: file.name, tensor: t.name });
        return { kind: "codes", rows, cols, codes, scales: { granularity: "group", groupSize: 256, scales: tq1BlockScales(payload) } };
      }
      case "Q2_0": {
        const { codes, blockScales } = unpackLayout({ layout: "q2_0", blockSize: 64 }, await file.readTensor(t.name), [rows, cols], undefined, { file: file.name, tensor: t.name });
        return { kind: "codes", rows, cols, codes, scales: { granularity: "group", groupSize: 64, scales: blockScales! } };
      }
      case "TL1":
      case "TL2":
        throw modelError(file.name, `tensor "${t.name}" is ${t.type.name}, whose tiling a GGUF does not record`, "Run the .b158 the GGUF was exported from: it records the tiling.");
      default:
        return undefined;
    }
  };
  const vector = async (t: GgufTensorInfo): Promise<Float32Array> => {
    const bytes = await file.readTensor(t.name);
    if (t.type.name === "F32") return float32View(bytes).slice();
    if (t.type.name === "F16" || t.type.name === "BF16") return halfBitsToFloat32(uint16View(bytes), t.type.name === "F16" ? "f16" : "bf16");
    throw modelError(file.name, `norm "${t.name}" is ${t.type.name}; the runtime reads F32, F16 or BF16 norms`);
  };
  return {
    label: file.name,
    kind: "gguf",
    spec,
    tokenizerFiles: {},
    lossy: false,
    diagnostics: [],
    vector: (role, layer) => vector(role === "norm" ? global("norm") : layerTensor(role, layer ?? 0)),
    async linear(role, layer): Promise<LinearWeight> {
      const t = layerTensor(role, layer);
      const weight = await ternary(t);
      return weight === undefined ? { kind: "dense", weight: await dense(t), bitnet: bitnetLinears } : { kind: "ternary", weight, bitnet: bitnetLinears };
    },
    async matrix(role) {
      const t = global(role);
      return (await ternary(t)) ?? (await dense(t));
    },
    close: () => file.close(),
  };
}
