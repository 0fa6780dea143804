import type { HfConfig } from "../formats/hf-config/read.js";
import { layerIndex } from "./names.js";

/** Model dimensions, from config.json where present, else inferred from tensor shapes. */
export interface ModelDims {
  readonly hiddenSize: number | undefined;
  readonly intermediateSize: number | undefined;
  readonly layers: number | undefined;
  readonly heads: number | undefined;
  readonly kvHeads: number | undefined;
  readonly headDim: number | undefined;
  readonly vocabSize: number | undefined;
}

export function modelDims(config: HfConfig | undefined, tensorNames: readonly string[]): ModelDims {
  let maxLayer = -1;
  for (const name of tensorNames) maxLayer = Math.max(maxLayer, layerIndex(name) ?? -1);
  const heads = config?.numHeads;
  const hidden = config?.hiddenSize;
  return {
    hiddenSize: hidden,
    intermediateSize: config?.intermediateSize,
    layers: config?.numLayers ?? (maxLayer >= 0 ? maxLayer + 1 : undefined),
    heads,
    kvHeads: config?.numKvHeads ?? heads,
    headDim: config?.headDim ?? (hidden !== undefined && heads !== undefined && hidden % heads === 0 ? hidden / heads : undefined),
    vocabSize: config?.vocabSize,
  };
}

/** The shape config.json implies for a known tensor name ([out, in] for linears), or undefined. */
export function expectedShape(name: string, dims: ModelDims): (number | undefined)[] | undefined {
  const { hiddenSize: h, intermediateSize: f, heads, kvHeads, headDim, vocabSize: v } = dims;
  const q = heads !== undefined && headDim !== undefined ? heads * headDim : undefined;
  const kv = kvHeads !== undefined && headDim !== undefined ? kvHeads * headDim : undefined;
  const global = name.replace(/^model\./, "");
  if (global === "embed_tokens.weight" || global === "lm_head.weight") return [v, h];
  if (global === "norm.weight") return [h];
  const suffix = name.replace(/^(?:model\.)?layers\.\d+\./, "");
  if (suffix === name) return undefined;
  switch (suffix) {
    case "self_attn.q_proj.weight":
      return [q, h];
    case "self_attn.k_proj.weight":
    case "self_attn.v_proj.weight":
      return [kv, h];
    case "self_attn.o_proj.weight":
      return [h, q];
    case "mlp.gate_proj.weight":
    case "mlp.up_proj.weight":
      return [f, h];
    case "mlp.down_proj.weight":
      return [h, f];
    case "input_layernorm.weight":
    case "post_attention_layernorm.weight":
    case "pre_feedforward_layernorm.weight":
    case "post_feedforward_layernorm.weight":
    case "self_attn.attn_sub_norm.weight":
    case "self_attn.inner_attn_ln.weight":
      return [h];
    case "self_attn.q_norm.weight":
    case "self_attn.k_norm.weight":
      return [headDim];
    // BitNet-embedding's per-projection input norms: the projection's input width
    case "self_attn.q_proj.norm.weight":
    case "self_attn.k_proj.norm.weight":
    case "self_attn.v_proj.norm.weight":
    case "mlp.gate_proj.norm.weight":
    case "mlp.up_proj.norm.weight":
      return [h];
    case "self_attn.o_proj.norm.weight":
      return [q];
    case "mlp.down_proj.norm.weight":
    case "mlp.ffn_sub_norm.weight":
    case "mlp.ffn_layernorm.weight":
      return [f];
    default:
      return undefined;
  }
}
