import type { Activation, ArchitectureId } from "./spec.js";
import { modelError } from "./spec.js";

/**
 * The decoder-only graphs the runtime runs, and how a model is recognised as one of them. Every
 * graph is the Llama core (pre-RMSNorm, rope, grouped-query causal attention, gated FFN, final
 * RMSNorm, tied or separate head); an architecture adds features to it. A later family (Qwen3's
 * per-head q/k norms, Gemma3's extra norms and scaled embedding, MiniCPM4's residual scaling)
 * becomes a new entry here, new roles in LAYER_TENSORS, and a branch where the feature applies in
 * ./transformer.ts.
 */
export interface Architecture {
  readonly id: ArchitectureId;
  readonly title: string;
  /** RMSNorm before o_proj (attnSubNorm) and before down_proj (ffnSubNorm). */
  readonly subNorms: boolean;
  /** When config.json does not say (transformers' config class default). */
  readonly defaultActivation: Activation;
}

export const ARCHITECTURES: Readonly<Record<ArchitectureId, Architecture>> = {
  bitnet: { id: "bitnet", title: "BitNet b1.58, 1bitLLM layout (inner_attn_ln / ffn_layernorm sub-norms)", subNorms: true, defaultActivation: "silu" },
  "bitnet-b1.58": { id: "bitnet-b1.58", title: "BitNet b1.58 2B-4T layout (attn_sub_norm / ffn_sub_norm sub-norms)", subNorms: true, defaultActivation: "relu2" },
  llama: { id: "llama", title: "Llama (Falcon3 / Falcon-E / Llama3-8B-1.58 and generic Llama models)", subNorms: false, defaultActivation: "silu" },
};

export type LayerRole = "attnNorm" | "q" | "k" | "v" | "o" | "attnSubNorm" | "ffnNorm" | "gate" | "up" | "down" | "ffnSubNorm";
export type GlobalRole = "embed" | "norm" | "head";

/** Per-layer tensor names: Hugging Face suffixes after `model.layers.N.` (any one of them), and the GGUF suffix after `blk.N.`. */
export const LAYER_TENSORS: Readonly<Record<LayerRole, { readonly hf: readonly string[]; readonly gguf: string }>> = {
  attnNorm: { hf: ["input_layernorm.weight"], gguf: "attn_norm.weight" },
  q: { hf: ["self_attn.q_proj.weight"], gguf: "attn_q.weight" },
  k: { hf: ["self_attn.k_proj.weight"], gguf: "attn_k.weight" },
  v: { hf: ["self_attn.v_proj.weight"], gguf: "attn_v.weight" },
  o: { hf: ["self_attn.o_proj.weight"], gguf: "attn_output.weight" },
  attnSubNorm: { hf: ["self_attn.attn_sub_norm.weight", "self_attn.inner_attn_ln.weight"], gguf: "attn_sub_norm.weight" },
  ffnNorm: { hf: ["post_attention_layernorm.weight"], gguf: "ffn_norm.weight" },
  gate: { hf: ["mlp.gate_proj.weight"], gguf: "ffn_gate.weight" },
  up: { hf: ["mlp.up_proj.weight"], gguf: "ffn_up.weight" },
  down: { hf: ["mlp.down_proj.weight"], gguf: "ffn_down.weight" },
  ffnSubNorm: { hf: ["mlp.ffn_sub_norm.weight", "mlp.ffn_layernorm.weight"], gguf: "ffn_sub_norm.weight" },
};

export const GLOBAL_TENSORS: Readonly<Record<GlobalRole, { readonly hf: readonly string[]; readonly gguf: string }>> = {
  embed: { hf: ["model.embed_tokens.weight"], gguf: "token_embd.weight" },
  norm: { hf: ["model.norm.weight"], gguf: "output_norm.weight" },
  head: { hf: ["lm_head.weight"], gguf: "output.weight" },
};

export const LINEAR_ROLES: readonly LayerRole[] = ["q", "k", "v", "o", "gate", "up", "down"];

/** The roles a layer of `architecture` must have. */
export function layerRoles(architecture: Architecture): LayerRole[] {
  const core: LayerRole[] = ["attnNorm", "q", "k", "v", "o", "ffnNorm", "gate", "up", "down"];
  return architecture.subNorms ? [...core, "attnSubNorm", "ffnSubNorm"] : core;
}

/** The Hugging Face name of a role in layer `layer` among `names`, with or without the `model.` prefix. */
export function hfLayerTensor(names: ReadonlySet<string>, role: LayerRole, layer: number): string | undefined {
  for (const suffix of LAYER_TENSORS[role].hf) {
    for (const prefix of ["model.layers.", "layers."]) {
      const name = `${prefix}${layer}.${suffix}`;
      if (names.has(name)) return name;
    }
  }
  return undefined;
}

export function hfGlobalTensor(names: ReadonlySet<string>, role: GlobalRole): string | undefined {
  for (const name of GLOBAL_TENSORS[role].hf) {
    if (names.has(name)) return name;
    const bare = name.replace(/^model\./, "");
    if (names.has(bare)) return bare;
  }
  return undefined;
}

const LLAMA_TYPES = ["llama", "mistral"];
const LLAMA_CLASSES = ["LlamaForCausalLM", "MistralForCausalLM"];

/**
 * The graph of a Hugging Face model: sub-norm names decide BitNet layouts (the tensors are what the
 * model computes with), else a Llama model_type or class.
 */
export function detectHfArchitecture(config: Record<string, unknown>, names: ReadonlySet<string>, file: string): Architecture {
  const has = (pattern: RegExp) => [...names].some((n) => pattern.test(n));
  if (has(/\.self_attn\.inner_attn_ln\.weight$/) || has(/\.mlp\.ffn_layernorm\.weight$/)) return ARCHITECTURES.bitnet;
  if (has(/\.self_attn\.attn_sub_norm\.weight$/) || has(/\.mlp\.ffn_sub_norm\.weight$/)) return ARCHITECTURES["bitnet-b1.58"];
  const modelType = typeof config.model_type === "string" ? config.model_type : "";
  const classes = Array.isArray(config.architectures) ? (config.architectures as unknown[]) : [];
  if (LLAMA_TYPES.includes(modelType) || classes.some((c) => typeof c === "string" && LLAMA_CLASSES.includes(c))) return ARCHITECTURES.llama;
  throw modelError(
    file,
    `the runtime does not know the architecture ${JSON.stringify(classes[0] ?? modelType ?? "unknown")} (model_type ${JSON.stringify(modelType)})`,
    "The runtime runs BitNet (1bitLLM, 2B-4T) and Llama-architecture models.",
  );
}

/** config.json's hidden_act, or the architecture's default. */
export function activationOf(config: Record<string, unknown>, architecture: Architecture, file: string): Activation {
  const act = config.hidden_act ?? config.hidden_activation;
  if (act === undefined || act === null) return architecture.defaultActivation;
  if (act === "silu" || act === "swish") return "silu";
  if (act === "relu2") return "relu2";
  throw modelError(file, `hidden_act ${JSON.stringify(act)} is not supported by the runtime (silu and relu2 are)`);
}
