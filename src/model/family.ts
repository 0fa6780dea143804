import type { HfConfig } from "../formats/hf-config/read.js";
import type { CheckpointTensor } from "../checkpoint/open.js";
import type { Diagnostic } from "./diagnostics.js";
import { BITNET_LINEAR, WEIGHT_SCALE_SUFFIX } from "./names.js";

/**
 * Model families, detected by features (tensor dtypes, sibling tensors, config fields), never by
 * an allow-list of repo names. docs/families.md gives the rules and the evidence for them.
 */
export type FamilyId = "bitnet-1bitllm" | "bitnet-latent" | "bitnet-packed" | "llama-bitnet-packed" | "generic";

/**
 * How a checkpoint's `weight_scale` turns into our per-tensor scale (effective weight = scale x ternary):
 * - "absmean": latent weights; scale = max(mean|W|, 1e-5) computed at conversion.
 * - "multiply": autobitlinear offline (2B-4T packed): effective = ternary x weight_scale.
 * - "divide": bitlinear (Falcon3-1.58bit, HF1BitLLM): effective = ternary / weight_scale.
 */
export type ScaleConvention = "absmean" | "multiply" | "divide";

export interface Family {
  readonly id: FamilyId;
  /** 1-5 as numbered in the docs. */
  readonly number: 1 | 2 | 3 | 4 | 5;
  readonly title: string;
  readonly convention: ScaleConvention;
  /** Where the convention came from: quantization_config.linear_class, or our documented default. */
  readonly conventionSource: "config" | "assumed" | "latent";
  /** The features that decided the family, for the report. */
  readonly evidence: readonly string[];
  /** True for post-training ternarization of a model not trained ternary (family 5). */
  readonly lossy: boolean;
}

const TITLES: Record<FamilyId, string> = {
  "bitnet-1bitllm": "BitNet b1.58, latent weights, 1bitLLM layout (inner_attn_ln / ffn_layernorm sub-norms)",
  "bitnet-latent": "BitNet b1.58, latent weights (attn_sub_norm / ffn_sub_norm sub-norms)",
  "bitnet-packed": "BitNet b1.58, pre-quantized: packed U8 + weight_scale",
  "llama-bitnet-packed": "Llama with BitNet quantization: packed U8 + weight_scale",
  generic: "Generic safetensors model: post-training ternarization of the tensors you name",
};
const NUMBERS: Record<FamilyId, Family["number"]> = { "bitnet-1bitllm": 1, "bitnet-latent": 2, "bitnet-packed": 3, "llama-bitnet-packed": 4, generic: 5 };

export function detectFamily(config: HfConfig | undefined, tensors: ReadonlyMap<string, CheckpointTensor>, diagnostics: Diagnostic[]): Family {
  const evidence: string[] = [];
  const names = [...tensors.keys()];
  const linears = names.filter((n) => BITNET_LINEAR.test(n));
  const packed = linears.filter((n) => tensors.get(n)!.dtype === "U8" && tensors.has(n.slice(0, -".weight".length) + WEIGHT_SCALE_SUFFIX));
  const has = (pattern: RegExp) => names.some((n) => pattern.test(n));
  const oneBitLlmSubNorms = has(/\.self_attn\.inner_attn_ln\.weight$/) || has(/\.mlp\.ffn_layernorm\.weight$/);
  const subNorms = has(/\.self_attn\.attn_sub_norm\.weight$/) || has(/\.mlp\.ffn_sub_norm\.weight$/);
  const architecture = config?.architectures[0];
  const bitnetArchitecture = architecture !== undefined && /^bitnet/i.test(architecture);
  const quant = config?.quantization;
  const bitnetQuant = quant?.quantMethod === "bitnet";

  if (architecture !== undefined) evidence.push(`architecture ${architecture}`);
  if (bitnetQuant) evidence.push(`quantization_config.quant_method "bitnet"${quant?.linearClass ? `, linear_class "${quant.linearClass}"` : ""}`);

  const make = (id: FamilyId, convention: ScaleConvention, conventionSource: Family["conventionSource"]): Family => ({
    id,
    number: NUMBERS[id],
    title: TITLES[id],
    convention,
    conventionSource,
    evidence,
    lossy: id === "generic",
  });

  if (packed.length > 0) {
    evidence.push(`${packed.length} of ${linears.length} linear weights are U8 with a weight_scale sibling`);
    let convention: ScaleConvention;
    let source: Family["conventionSource"] = "config";
    if (quant?.linearClass === "autobitlinear") convention = "multiply";
    else if (quant?.linearClass === "bitlinear") convention = "divide";
    else {
      // transformers' default linear class is BitLinear, which divides; Falcon3-1.58bit and
      // HF1BitLLM ship without linear_class and are BitLinear checkpoints.
      convention = "divide";
      source = "assumed";
      diagnostics.push({
        severity: "warning",
        code: "W_SCALE_CONVENTION_ASSUMED",
        message:
          "quantization_config has no linear_class: assumed \"bitlinear\" (effective weight = ternary / weight_scale), transformers' default. " +
          "If this checkpoint was made for AutoBitLinear, its scales are inverted: add linear_class to config.json.",
      });
    }
    const bitnetLayout = bitnetArchitecture || subNorms || oneBitLlmSubNorms || config?.modelType === "bitnet";
    if (subNorms) evidence.push("attn_sub_norm / ffn_sub_norm sub-norms");
    return make(bitnetLayout ? "bitnet-packed" : "llama-bitnet-packed", convention, source);
  }
  if (oneBitLlmSubNorms) {
    evidence.push("inner_attn_ln / ffn_layernorm sub-norms", "latent float linear weights");
    return make("bitnet-1bitllm", "absmean", "latent");
  }
  if (subNorms || bitnetArchitecture || bitnetQuant) {
    if (subNorms) evidence.push("attn_sub_norm / ffn_sub_norm sub-norms");
    evidence.push("latent float linear weights");
    return make("bitnet-latent", "absmean", "latent");
  }
  evidence.push("no BitNet markers (architecture, quantization_config, sub-norms or packed weights)");
  return make("generic", "absmean", "latent");
}
