import { B158Error } from "../../errors.js";
import { openGgufFile, type GgufFile, type GgufTensorInfo } from "../../formats/gguf/read.js";
import { unpackLayout } from "../../pack/codec.js";
import { halfBitsToFloat32 } from "../../pack/float16.js";
import { dequantizeQ8_0 } from "../../pack/q8_0.js";
import { GLOBAL_TENSORS, LAYER_TENSORS, type LayerRole } from "../architectures.js";
import type { DenseWeightInput } from "../kernels/api.js";
import { checkSpec, modelError, num, type ArchitectureId, type ModelSpec } from "../spec.js";
import { tq1BlockScales } from "./b158.js";
import { denseInput, float32View, payloadReader, uint16View, type LinearWeight, type ModelSource } from "./source.js";

/**
 * A GGUF that b158 wrote (arch bitnet, bitnet-b1.58 or llama), run with Hugging Face semantics:
 * - arch llama holds Q/K rows permuted per head for llama.cpp's NORM rope; the runtime rotates
 *   adjacent pairs for it (rope layout "interleaved"), which computes the same attention;
 * - `<arch>.hidden_activation` is honoured (b158 writes relu2 for 2B-4T models, which mainline
 *   llama.cpp ignores): the runtime computes what the source model computes;
 * - TQ2_0 and I2_S (bitnet.cpp's table, 128-weight blocks: GGUF does not record the ARM variant)
 *   payloads go to the kernels as they are; TQ1_0 is decoded once with each block's d; F32, F16,
 *   BF16 and Q8_0 matrices stay floats. Every one of the seven projections is a BitNet linear
 *   (int8 activations), as in every model b158 writes; TL1/TL2 files are refused (their tiling is
 *   not recorded in the GGUF: run the .b158).
 */
export async function openGgufSource(path: string): Promise<ModelSource> {
  const file = await openGgufFile(path);
  try {
    return ggufSource(file);
  } catch (error) {
    await file.close();
    throw error;
  }
}

const BITNET_ARCHS = ["bitnet", "bitnet-b1.58", "bitnet-25"];

function ggufSpec(file: GgufFile): ModelSpec {
  const arch = file.scalar("general.architecture");
  if (typeof arch !== "string" || !(BITNET_ARCHS.includes(arch) || arch === "llama")) {
    throw modelError(file.name, `GGUF architecture ${JSON.stringify(arch)} is not one the runtime runs (bitnet, bitnet-b1.58, bitnet-25, llama)`);
  }
  const key = (k: string) => num(typeof file.scalar(`${arch}.${k}`) === "bigint" ? Number(file.scalar(`${arch}.${k}`)) : file.scalar(`${arch}.${k}`));
  const embed = file.tensors.find((t) => t.name === GLOBAL_TENSORS.embed.gguf);
  if (embed === undefined) throw new B158Error("E_TENSOR_MISSING", `${file.name}: has no token_embd.weight`, { details: { file: file.name } });
  const hidden = key("embedding_length") ?? 0;
  const heads = key("attention.head_count") ?? 0;
  const act = file.scalar(`${arch}.hidden_activation`);
  const relu2 = act === "relu2" || (act === undefined && arch !== "bitnet" && arch !== "llama");
  if (act !== undefined && act !== "relu2" && act !== "silu") throw modelError(file.name, `${arch}.hidden_activation ${JSON.stringify(act)} is not supported (silu and relu2 are)`);
  const architecture: ArchitectureId = arch === "llama" ? "llama" : relu2 ? "bitnet-b1.58" : "bitnet";
  const id = (k: string) => {
    const v = file.scalar(`tokenizer.ggml.${k}_token_id`);
    return typeof v === "number" ? v : undefined;
  };
  const eos = id("eos");
  return checkSpec(
    {
      architecture,
      hiddenSize: hidden,
      intermediateSize: key("feed_forward_length") ?? 0,
      layers: key("block_count") ?? 0,
      heads,
      kvHeads: key("attention.head_count_kv") ?? heads,
      headDim: key("attention.key_length") ?? (heads > 0 ? hidden / heads : 0),
      vocabSize: embed.ne[1] ?? 0,
      rmsNormEps: key("attention.layer_norm_rms_epsilon") ?? 1e-6,
      rope: { theta: key("rope.freq_base") ?? 10000, layout: arch === "llama" ? "interleaved" : "half" },
      activation: relu2 ? "relu2" : "silu",
      subNorms: arch !== "llama",
      tiedHead: !file.tensors.some((t) => t.name === GLOBAL_TENSORS.head.gguf),
      maxPositions: key("context_length") ?? 2048,
      bosTokenId: id("bos"),
      eosTokenIds: eos === undefined ? [] : [eos],
    },
    file.name,
  );
}

export function ggufSource(file: GgufFile): ModelSource {
  const spec = ggufSpec(file);
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
      const [cols, rows] = [t.ne[0]!, t.ne[1] ?? 1];
      switch (t.type.name) {
        case "TQ2_0":
          return { kind: "ternary", weight: { kind: "tq2_0", rows, cols, payload: reader(t) } };
        case "I2_S":
          return { kind: "ternary", weight: { kind: "i2_s", rows, cols, blockSize: 128, payload: reader(t) } };
        case "TQ1_0": {
          const payload = await file.readTensor(t.name);
          const { codes } = unpackLayout({ layout: "tq1_0", blockSize: 256 }, payload, [rows, cols]);
          return { kind: "ternary", weight: { kind: "codes", rows, cols, codes, scales: { granularity: "group", groupSize: 256, scales: tq1BlockScales(payload) } } };
        }
        case "TL1":
        case "TL2":
          throw modelError(file.name, `tensor "${t.name}" is ${t.type.name}, whose tiling a GGUF does not record`, "Run the .b158 the GGUF was exported from: it records the tiling.");
        default:
          return { kind: "dense", weight: await dense(t), bitnet: true };
      }
    },
    matrix: (role) => dense(global(role)),
    close: () => file.close(),
  };
}
