import { B158Error } from "../../errors.js";
import { openB158File, plainToFloat32, type B158File, type B158Tensor } from "../../formats/b158/read.js";
import type { PlainLayout } from "../../formats/b158/spec.js";
import { unpackLayout } from "../../pack/codec.js";
import { fromF16Bits } from "../../pack/float16.js";
import { Q2_0_BLOCK, TQ1_0_BLOCK_BYTES, TQ_BLOCK } from "../../pack/layouts.js";
import { hfGlobalTensor, hfLayerTensor, type LayerRole } from "../architectures.js";
import { specFromHfConfig } from "../hf-spec.js";
import { poolingFromFiles } from "../pooling.js";
import type { DenseWeightInput, TernaryWeightInput } from "../kernels/api.js";
import { denseInput, payloadReader, type LinearWeight, type ModelSource, type TokenizerFiles } from "./source.js";

/**
 * A .b158 as the runtime reads it. I2_S and TQ2_0 payloads go to the kernels as the bytes the file
 * holds, read straight into the kernels' memory (as are f32/f16/bf16 matrices); TL1, TL2 and TQ1_0 payloads are decoded once at load (src/pack's unpackers, as the .b158 reader's
 * decodeTernary)
 * and handed over as codes, which a backend re-lays into its own format: TL1/TL2 with the tensor's
 * float32 scale, TQ1_0 with each 256-weight block's f16 d, as llama.cpp computes it. Plain
 * (--fallback) linears stay floats. The model is described by the config.json the file embeds.
 */
export async function openB158Source(path: string): Promise<ModelSource> {
  const file = await openB158File(path);
  try {
    return b158Source(file);
  } catch (error) {
    await file.close();
    throw error;
  }
}

const decoder = new TextDecoder();

export function b158Source(file: B158File): ModelSource {
  const { header } = file;
  const config = header.model.config;
  if (config === null) {
    throw new B158Error("E_MODEL_UNSUPPORTED", `${file.name}: holds no config.json, so the runtime cannot know the model's graph`, {
      details: { file: file.name },
      hint: "Convert from a checkpoint directory that has config.json.",
    });
  }
  const names = new Set(file.tensors.map((t) => t.name));
  const embedding = file.tensors.find((t) => t.role === "embedding");
  if (embedding === undefined || embedding.shape.length !== 2) {
    throw new B158Error("E_TENSOR_MISSING", `${file.name}: has no 2-D token embedding`, { details: { file: file.name } });
  }
  const decoded = new Map<string, string | undefined>();
  const text = (name: string) => {
    if (!decoded.has(name)) decoded.set(name, header.files[name] === undefined ? undefined : decoder.decode(header.files[name]));
    return decoded.get(name);
  };
  const generation = text("generation_config.json");
  let generationConfig: Record<string, unknown> | undefined;
  try {
    generationConfig = generation === undefined ? undefined : (JSON.parse(generation) as Record<string, unknown>);
  } catch {
    generationConfig = undefined;
  }
  const pooling = poolingFromFiles(text, file.name, header.model.family === "bitnet-embedding");
  const spec = specFromHfConfig(config, names, {
    file: file.name,
    vocabSize: embedding.shape[0]!,
    hasHead: hfGlobalTensor(names, "head") !== undefined,
    generationConfig,
    ...(pooling === undefined ? {} : { pooling }),
  });
  // a fake-quantized model's framework runs plain nn.Linear: no activation quantization
  const bitnet = header.model.family !== "fake-quantized";
  // decoded when a tokenizer is built (an 18 MB tokenizer.json is not text until then)
  const tokenizerFiles: TokenizerFiles = {
    get tokenizerJson() {
      return text("tokenizer.json");
    },
    get tokenizerConfig() {
      return text("tokenizer_config.json");
    },
    tokenizerModel: header.files["tokenizer.model"],
  };

  const layerTensor = (role: LayerRole, layer: number): B158Tensor => {
    const name = hfLayerTensor(names, role, layer);
    if (name === undefined) throw new B158Error("E_TENSOR_MISSING", `${file.name}: layer ${layer} has no ${role} tensor`, { details: { file: file.name, layer, role } });
    return file.tensor(name);
  };
  const floats = async (t: B158Tensor) => plainToFloat32(t.layout as PlainLayout, await file.readPayload(t.name));
  const reader = (t: B158Tensor) => payloadReader(t.length, (offset, into) => file.readPayloadInto(t.name, offset, into));
  const dense = (t: B158Tensor, rows: number, cols: number): Promise<DenseWeightInput> =>
    denseInput(t.layout, rows, cols, reader(t), () => file.readPayload(t.name), (b) => plainToFloat32(t.layout as PlainLayout, b));

  return {
    label: file.name,
    kind: "b158",
    spec,
    tokenizerFiles,
    lossy: header.provenance.options.ternarize.length > 0,
    diagnostics: [],
    async vector(role, layer) {
      const t = role === "norm" ? file.tensor(hfGlobalTensor(names, "norm") ?? "model.norm.weight") : layerTensor(role, layer ?? 0);
      return floats(t);
    },
    async linear(role, layer) {
      const t = layerTensor(role, layer);
      const [rows, cols] = t.shape as [number, number];
      if (t.layoutParams === undefined) {
        return { kind: "dense", weight: await dense(t, rows, cols), bitnet: bitnet && t.role === "ternary-linear" } satisfies LinearWeight;
      }
      return { kind: "ternary", weight: await ternary(t), bitnet };
    },
    async matrix(role) {
      const name = hfGlobalTensor(names, role);
      if (name === undefined) throw new B158Error("E_TENSOR_MISSING", `${file.name}: has no ${role === "embed" ? "token embedding" : "output head"}`, { details: { file: file.name } });
      const t = file.tensor(name);
      // a ternary embedding / head (a ternary source's) stays ternary
      if (t.layoutParams !== undefined) return ternary(t);
      const [rows, cols] = [t.shape[0]!, t.shape.slice(1).reduce((a, b) => a * b, 1)];
      return dense(t, rows, cols);
    },
    close: () => file.close(),
  };

  /** A ternary payload as the kernels take it: I2_S and TQ2_0 still in the file (read straight into the kernels' memory), other layouts as codes. */
  async function ternary(t: B158Tensor): Promise<TernaryWeightInput> {
    const [rows, cols] = t.shape as [number, number];
    const params = t.layoutParams!;
    let weight: TernaryWeightInput;
    switch (params.layout) {
      case "i2_s":
        weight = { kind: "i2_s", rows, cols, blockSize: params.blockSize, payload: reader(t) };
        break;
      case "tq2_0":
        weight = { kind: "tq2_0", rows, cols, payload: reader(t) };
        break;
      case "tq1_0":
      case "q2_0": {
        // re-laid once: the codes, with each block's own f16 d (256 weights for TQ1_0, 64 for Q2_0)
        const { codes, blockScales } = unpackLayout(params, await file.readPayload(t.name), [rows, cols], undefined, { file: file.name, tensor: t.name });
        weight = { kind: "codes", rows, cols, codes, scales: { granularity: "group", groupSize: params.layout === "tq1_0" ? TQ_BLOCK : Q2_0_BLOCK, scales: blockScales! } };
        break;
      }
      case "tl1":
      case "tl2": {
        const { codes, scale } = await file.decodeTernary(t.name);
        if (typeof scale !== "number") throw new B158Error("E_B158_LAYOUT", `${file.name}: ${params.layout} tensor "${t.name}" has group scales, which the layout cannot hold`, { details: { file: file.name, tensor: t.name } });
        weight = { kind: "codes", rows, cols, codes, scales: { granularity: "tensor", scale: Math.fround(scale) } };
        break;
      }
    }
    return weight;
  }
}

/** The f16 d of every TQ1_0 block (the last two bytes of its 54), in row-major block order. */
export function tq1BlockScales(payload: Uint8Array): Float32Array {
  const blocks = payload.byteLength / TQ1_0_BLOCK_BYTES;
  const scales = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const at = b * TQ1_0_BLOCK_BYTES + TQ1_0_BLOCK_BYTES - 2;
    scales[b] = fromF16Bits(payload[at]! | (payload[at + 1]! << 8));
  }
  return scales;
}
