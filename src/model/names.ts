/**
 * Tensor names: which HF tensors are BitNet linears, and their GGUF names
 * (llama.cpp gguf-py tensor_mapping).
 */

/** The seven linears BitNet b1.58 ternarizes in every layer. */
export const BITNET_LINEAR = /^(?:model\.)?layers\.(\d+)\.(?:self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)\.weight$/;
export const WEIGHT_SCALE_SUFFIX = ".weight_scale";
const LAYER = /^(?:model\.)?layers\.(\d+)\.(.+)$/;

const PER_LAYER_GGUF: Readonly<Record<string, string>> = {
  "input_layernorm.weight": "attn_norm.weight",
  "post_attention_layernorm.weight": "ffn_norm.weight",
  // Qwen3 / Gemma3: per-head RMSNorms of q and k
  "self_attn.q_norm.weight": "attn_q_norm.weight",
  "self_attn.k_norm.weight": "attn_k_norm.weight",
  // BitNet-embedding: the RMSNorm before each projection (bitnet.cpp's embedding converter's names)
  "self_attn.q_proj.norm.weight": "attn_q_norm_in.weight",
  "self_attn.k_proj.norm.weight": "attn_k_norm_in.weight",
  "self_attn.v_proj.norm.weight": "attn_v_norm_in.weight",
  "self_attn.o_proj.norm.weight": "attn_output_norm_in.weight",
  "mlp.gate_proj.norm.weight": "ffn_gate_norm_in.weight",
  "mlp.up_proj.norm.weight": "ffn_up_norm_in.weight",
  "mlp.down_proj.norm.weight": "ffn_down_norm_in.weight",
  "self_attn.q_proj.weight": "attn_q.weight",
  "self_attn.k_proj.weight": "attn_k.weight",
  "self_attn.v_proj.weight": "attn_v.weight",
  "self_attn.o_proj.weight": "attn_output.weight",
  "self_attn.inner_attn_ln.weight": "attn_sub_norm.weight",
  "self_attn.attn_sub_norm.weight": "attn_sub_norm.weight",
  "mlp.gate_proj.weight": "ffn_gate.weight",
  "mlp.up_proj.weight": "ffn_up.weight",
  "mlp.down_proj.weight": "ffn_down.weight",
  "mlp.ffn_layernorm.weight": "ffn_sub_norm.weight",
  "mlp.ffn_sub_norm.weight": "ffn_sub_norm.weight",
};

/**
 * Gemma3's four norms per layer: its post_attention_layernorm normalizes the attention output (not
 * the FFN input), pre_feedforward_layernorm is the FFN input norm (llama.cpp's gemma3 tensors).
 */
const GEMMA3_PER_LAYER_GGUF: Readonly<Record<string, string>> = {
  "post_attention_layernorm.weight": "post_attention_norm.weight",
  "pre_feedforward_layernorm.weight": "ffn_norm.weight",
  "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
};

/** config.json model_types whose tensor names map differently (Gemma3's norms). */
export const GEMMA3_MODEL_TYPES: readonly string[] = ["gemma3_text", "gemma3"];

const GLOBAL_GGUF: Readonly<Record<string, string>> = {
  "model.embed_tokens.weight": "token_embd.weight",
  "model.norm.weight": "output_norm.weight",
  "lm_head.weight": "output.weight",
};

/**
 * The GGUF tensor name, or undefined when the tensor has no GGUF counterpart (e.g. weight_scale).
 * `modelType` (config.json's model_type) picks Gemma3's names for its norms.
 */
export function ggufName(name: string, modelType?: string): string | undefined {
  const global = GLOBAL_GGUF[name] ?? GLOBAL_GGUF[`model.${name}`];
  if (global !== undefined) return global;
  const match = LAYER.exec(name);
  if (match === null) return undefined;
  const gemma = modelType !== undefined && GEMMA3_MODEL_TYPES.includes(modelType) ? GEMMA3_PER_LAYER_GGUF[match[2]!] : undefined;
  const mapped = gemma ?? PER_LAYER_GGUF[match[2]!];
  return mapped === undefined ? undefined : `blk.${match[1]}.${mapped}`;
}

export function layerIndex(name: string): number | undefined {
  const match = LAYER.exec(name);
  return match === null ? undefined : Number(match[1]);
}

/**
 * The runs of layer indices in 0 .. count-1 missing from `present` (ascending, distinct): at most
 * present.length + 1 ranges, however large `count` is, so a claimed layer count costs nothing.
 */
export function absentRanges(present: readonly number[], count: number): [number, number][] {
  const ranges: [number, number][] = [];
  let next = 0;
  for (const layer of present) {
    if (layer >= count) break;
    if (layer > next) ranges.push([next, layer - 1]);
    next = Math.max(next, layer + 1);
  }
  if (next < count) ranges.push([next, count - 1]);
  return ranges;
}

/**
 * `--ternarize` globs: `*` matches any run of characters (dots included), `?` one character;
 * everything else is literal. Whole-name match.
 */
export function globToRegExp(glob: string): RegExp {
  let source = "";
  for (const c of glob) {
    if (c === "*") source += ".*";
    else if (c === "?") source += ".";
    else source += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${source.replace(/(\.\*)+/g, ".*")}$`);
}
