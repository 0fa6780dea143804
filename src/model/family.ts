import type { HfConfig } from "../formats/hf-config/read.js";
import type { CheckpointTensor } from "../checkpoint/open.js";
import type { Diagnostic } from "./diagnostics.js";
import { BITNET_LINEAR, WEIGHT_SCALE_SUFFIX } from "./names.js";
import type { ValueSample } from "./sample.js";

/**
 * Model families, detected by features (tensor dtypes, sibling tensors, config fields, and for
 * checkpoints whose config says nothing, a bounded sample of the values), never by an allow-list of
 * repo names. docs/families.md gives the rules and the evidence for them; docs/ternarization.md the
 * semantics each family's framework gives its weights.
 */
export type FamilyId = "bitnet-1bitllm" | "bitnet-latent" | "bitnet-packed" | "llama-bitnet-packed" | "fake-quantized" | "generic" | "bitnet-embedding";

/**
 * What the source's framework does with a ternary linear's weights (docs/ternarization.md):
 * - "online": latent weights it ternarizes with absmean at every forward pass (whatever the values);
 * - "packed": U8 codes + weight_scale, unpacked by the linear_class convention;
 * - "stored": float weights it uses as they are, already exactly t x s (fake-quantized).
 */
export type WeightSemantics = "online" | "packed" | "stored";
/** `--weights`: the user's override of the float linears' semantics (latent: online, quantized: stored). */
export type WeightsOverride = "latent" | "quantized";
/** Where the float linears' semantics came from. */
export type SemanticsSource = "config" | "values" | "flag";

/**
 * How a checkpoint's `weight_scale` turns into our per-tensor scale (effective weight = scale x ternary):
 * - "absmean": latent weights; scale = max(mean|W|, 1e-5) computed at conversion.
 * - "multiply": autobitlinear offline (2B-4T packed): effective = ternary x weight_scale.
 * - "divide": bitlinear (Falcon3-1.58bit, HF1BitLLM): effective = ternary / weight_scale.
 */
export type ScaleConvention = "absmean" | "multiply" | "divide";

export interface Family {
  readonly id: FamilyId;
  /** 1-7 as numbered in the docs. */
  readonly number: 1 | 2 | 3 | 4 | 5 | 6 | 7;
  readonly title: string;
  readonly convention: ScaleConvention;
  /** Where the convention came from: quantization_config.linear_class, or our documented default. */
  readonly conventionSource: "config" | "assumed" | "latent";
  /** The features that decided the family, for the report. */
  readonly evidence: readonly string[];
  /** True for post-training ternarization of a model not trained ternary (family 5). */
  readonly lossy: boolean;
  /**
   * How the framework uses the float linear weights: "online" (absmean at every forward pass) or
   * "stored" (as they are); null for a generic model, whose --ternarize'd tensors are ternarized
   * (online) at the user's request. Packed U8 linears are "packed" whatever this says.
   */
  readonly semantics: "online" | "stored" | null;
  readonly semanticsSource: SemanticsSource | null;
  /** The bounded read of the first float linear's values, when the checkpoint has one. */
  readonly sample: ValueSample | null;
}

export interface DetectOptions {
  readonly weights?: WeightsOverride;
  readonly sample?: ValueSample;
}

const TITLES: Record<FamilyId, string> = {
  "bitnet-1bitllm": "BitNet b1.58, latent weights, 1bitLLM layout (inner_attn_ln / ffn_layernorm sub-norms)",
  "bitnet-latent": "BitNet b1.58, latent weights (attn_sub_norm / ffn_sub_norm sub-norms)",
  "bitnet-packed": "BitNet b1.58, pre-quantized: packed U8 + weight_scale",
  "llama-bitnet-packed": "Llama with BitNet quantization: packed U8 + weight_scale",
  "fake-quantized": "Already ternary (fake-quantized): float weights exactly ternary x scale, used as stored",
  generic: "Generic safetensors model: post-training ternarization of the tensors you name",
  "bitnet-embedding": "BitNet embedding model (Qwen3 / Gemma3 backbone, an RMSNorm before each projection), latent weights",
};
const NUMBERS: Record<FamilyId, Family["number"]> = { "bitnet-1bitllm": 1, "bitnet-latent": 2, "bitnet-packed": 3, "llama-bitnet-packed": 4, generic: 5, "fake-quantized": 6, "bitnet-embedding": 7 };

/** config.json model_types of the backbones BitNet-embedding models use (microsoft/bitnet-embedding-0.6b, -270m). */
export const EMBEDDING_BACKBONES: readonly string[] = ["qwen3", "gemma3_text"];
/** BitNet-embedding's per-projection input norm: `<projection>.norm.weight` beside each of the seven linears. */
export const PROJECTION_NORM = /^(?:model\.)?layers\.\d+\.(?:self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)\.norm\.weight$/;

export function detectFamily(config: HfConfig | undefined, tensors: ReadonlyMap<string, CheckpointTensor>, diagnostics: Diagnostic[], options: DetectOptions = {}): Family {
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

  const sample = options.sample;
  /** The float linears' semantics: the flag's, else the config's; the sample is reported, and checked against it. */
  const make = (id: FamilyId, convention: ScaleConvention, conventionSource: Family["conventionSource"], fromConfig: "online" | "stored" | null, why?: string): Family => {
    const override = options.weights === undefined ? undefined : options.weights === "latent" ? "online" : "stored";
    const semantics = override ?? fromConfig;
    const semanticsSource: SemanticsSource | null = override !== undefined ? "flag" : fromConfig === null ? null : id === "fake-quantized" ? "values" : "config";
    if (sample !== undefined) evidence.push(`sample: ${sample.detail}`);
    if (semantics !== null) evidence.push(override !== undefined ? `--weights ${options.weights}: the float linears are ${semantics === "online" ? "latent (absmean at conversion)" : "read as stored"}` : why!);
    if (sample !== undefined && semanticsSource !== "values") warnDisagreement(semantics, semanticsSource, sample, diagnostics);
    return { id, number: NUMBERS[id], title: TITLES[id], convention, conventionSource, evidence, lossy: id === "generic", semantics, semanticsSource, sample: sample ?? null };
  };
  const offline = quant?.quantizationMode === "offline";
  const bitnetSemantics = (): "online" | "stored" => (offline ? "stored" : "online");
  const bitnetWhy = () =>
    offline
      ? `config: quantization_config.quantization_mode "offline": AutoBitLinear uses float weights as stored (stored semantics)`
      : `config: ${architecture ?? "a BitNet model"}${quant?.quantizationMode === "online" ? ` with quantization_mode "online"` : ""} ternarizes latent weights with absmean at every forward pass (online semantics)`;

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
    const floats = linears.length - packed.length;
    return make(bitnetLayout ? "bitnet-packed" : "llama-bitnet-packed", convention, source, floats > 0 ? bitnetSemantics() : null, floats > 0 ? bitnetWhy() : undefined);
  }
  const projectionNorms = names.filter((n) => PROJECTION_NORM.test(n)).length;
  if (projectionNorms > 0 && config?.modelType !== undefined && EMBEDDING_BACKBONES.includes(config.modelType)) {
    // a plain Qwen3 / Gemma3 has no norm inside its projections: these are BitNet's BitLinear input norms
    evidence.push(`model_type "${config.modelType}"`, `${projectionNorms} per-projection input norms (<proj>.norm.weight)`, "float linear weights");
    return make("bitnet-embedding", "absmean", "latent", "online", `config: BitNet-embedding's BitLinear (an RMSNorm before each projection) ternarizes latent weights with absmean at every forward pass (online semantics)`);
  }
  if (oneBitLlmSubNorms) {
    evidence.push("inner_attn_ln / ffn_layernorm sub-norms", "float linear weights");
    return make("bitnet-1bitllm", "absmean", "latent", "online", `config: ${architecture ?? "1bitLLM BitnetForCausalLM"} (1bitLLM BitLinear) ternarizes latent weights with absmean at every forward pass (online semantics)`);
  }
  if (subNorms || bitnetArchitecture || bitnetQuant) {
    if (subNorms) evidence.push("attn_sub_norm / ffn_sub_norm sub-norms");
    evidence.push("float linear weights");
    return make("bitnet-latent", "absmean", "latent", bitnetSemantics(), bitnetWhy());
  }
  evidence.push("no BitNet markers (architecture, quantization_config, sub-norms or packed weights)");
  if (options.weights === "quantized" || sample?.verdict === "ternary") {
    // a plain architecture runs plain linears: weights that are exactly t x s are used as stored
    // (--weights latent still may say otherwise: then they are ternarized with absmean)
    return make("fake-quantized", "absmean", "latent", "stored", `config: ${architecture ?? "no BitNet architecture"} without BitNet quantization runs its linears on the weights as stored; the values are exactly ternary x scale (stored semantics)`);
  }
  return make("generic", "absmean", "latent", null);
}

/** When the values and the semantics disagree: follow the semantics (config or flag), and say how to override. */
function warnDisagreement(semantics: "online" | "stored" | null, source: SemanticsSource | null, sample: ValueSample, diagnostics: Diagnostic[]): void {
  if (semantics === "online" && sample.verdict === "ternary" && source === "config") {
    diagnostics.push({
      severity: "warning",
      code: "W_WEIGHTS_LOOK_QUANTIZED",
      tensor: sample.tensor,
      message:
        `the config says these weights are latent and ternarized with absmean at every forward pass, but ${sample.detail}. ` +
        "b158 follows the config, as the framework does: absmean gives scale c x (nonzero fraction), not c. If this checkpoint is a fake-quantized export that its framework uses as stored, convert with --weights quantized.",
    });
  }
  if (semantics === "stored" && sample.verdict === "latent") {
    diagnostics.push({
      severity: "warning",
      code: "W_WEIGHTS_LOOK_LATENT",
      tensor: sample.tensor,
      message:
        `the ${source === "flag" ? "--weights quantized flag says" : "config says"} these weights are used as stored (already ternary x scale), but ${sample.detail}. ` +
        "Converting will fail with E_STORED_NOT_TERNARY (b158 never re-quantizes stored weights). If they are latent weights the framework ternarizes at every forward pass, convert with --weights latent.",
    });
  }
}
