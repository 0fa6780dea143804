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
  /** Per-head RMSNorms of q and k (qNorm, kNorm) before rope. */
  readonly qkNorm: boolean;
  /** Norms of the attention and FFN outputs (postAttnNorm, postFfnNorm) before the residual adds; the FFN input norm is pre_feedforward_layernorm. */
  readonly sandwichNorms: boolean;
  /** When config.json does not say (transformers' config class default). */
  readonly defaultActivation: Activation;
}

const LLAMA_CORE = { subNorms: false, qkNorm: false, sandwichNorms: false } as const;

export const ARCHITECTURES: Readonly<Record<ArchitectureId, Architecture>> = {
  bitnet: { id: "bitnet", title: "BitNet b1.58, 1bitLLM layout (inner_attn_ln / ffn_layernorm sub-norms)", ...LLAMA_CORE, subNorms: true, defaultActivation: "silu" },
  "bitnet-b1.58": { id: "bitnet-b1.58", title: "BitNet b1.58 2B-4T layout (attn_sub_norm / ffn_sub_norm sub-norms)", ...LLAMA_CORE, subNorms: true, defaultActivation: "relu2" },
  llama: { id: "llama", title: "Llama (Falcon3 / Falcon-E / Llama3-8B-1.58 and generic Llama models)", ...LLAMA_CORE, defaultActivation: "silu" },
  qwen3: { id: "qwen3", title: "Qwen3 (per-head q/k RMSNorms; Ternary-Bonsai, BitNet-embedding 0.6B)", ...LLAMA_CORE, qkNorm: true, defaultActivation: "silu" },
  gemma3: {
    id: "gemma3",
    title: "Gemma3 (q/k norms, norms around the attention and the FFN, (1 + w) norms, scaled embedding, sliding-window layers; BitNet-embedding 270M)",
    ...LLAMA_CORE,
    qkNorm: true,
    sandwichNorms: true,
    defaultActivation: "gelu_tanh",
  },
  minicpm: { id: "minicpm", title: "MiniCPM (scaled embedding, residuals and logits; BitCPM4)", ...LLAMA_CORE, defaultActivation: "silu" },
};

export type LayerRole =
  | "attnNorm"
  | "q"
  | "k"
  | "v"
  | "o"
  | "attnSubNorm"
  | "ffnNorm"
  | "gate"
  | "up"
  | "down"
  | "ffnSubNorm"
  | "qNorm"
  | "kNorm"
  | "postAttnNorm"
  | "postFfnNorm"
  | ProjectionNormRole;

/** BitNet-embedding: the input norm of each projection. */
export type ProjectionNormRole = "qIn" | "kIn" | "vIn" | "oIn" | "gateIn" | "upIn" | "downIn";
export const PROJECTION_NORM_ROLES: Readonly<Record<"q" | "k" | "v" | "o" | "gate" | "up" | "down", ProjectionNormRole>> = { q: "qIn", k: "kIn", v: "vIn", o: "oIn", gate: "gateIn", up: "upIn", down: "downIn" };
export type GlobalRole = "embed" | "norm" | "head";

/** Per-layer tensor names: Hugging Face suffixes after `model.layers.N.` (any one of them), and the GGUF suffix after `blk.N.`. */
export const LAYER_TENSORS: Readonly<Record<LayerRole, { readonly hf: readonly string[]; readonly gguf: string }>> = {
  attnNorm: { hf: ["input_layernorm.weight"], gguf: "attn_norm.weight" },
  q: { hf: ["self_attn.q_proj.weight"], gguf: "attn_q.weight" },
  k: { hf: ["self_attn.k_proj.weight"], gguf: "attn_k.weight" },
  v: { hf: ["self_attn.v_proj.weight"], gguf: "attn_v.weight" },
  o: { hf: ["self_attn.o_proj.weight"], gguf: "attn_output.weight" },
  attnSubNorm: { hf: ["self_attn.attn_sub_norm.weight", "self_attn.inner_attn_ln.weight"], gguf: "attn_sub_norm.weight" },
  // Gemma3's FFN input norm is pre_feedforward_layernorm (its post_attention_layernorm is postAttnNorm): first match wins
  ffnNorm: { hf: ["pre_feedforward_layernorm.weight", "post_attention_layernorm.weight"], gguf: "ffn_norm.weight" },
  gate: { hf: ["mlp.gate_proj.weight"], gguf: "ffn_gate.weight" },
  up: { hf: ["mlp.up_proj.weight"], gguf: "ffn_up.weight" },
  down: { hf: ["mlp.down_proj.weight"], gguf: "ffn_down.weight" },
  ffnSubNorm: { hf: ["mlp.ffn_sub_norm.weight", "mlp.ffn_layernorm.weight"], gguf: "ffn_sub_norm.weight" },
  qNorm: { hf: ["self_attn.q_norm.weight"], gguf: "attn_q_norm.weight" },
  kNorm: { hf: ["self_attn.k_norm.weight"], gguf: "attn_k_norm.weight" },
  postAttnNorm: { hf: ["post_attention_layernorm.weight"], gguf: "post_attention_norm.weight" },
  postFfnNorm: { hf: ["post_feedforward_layernorm.weight"], gguf: "post_ffw_norm.weight" },
  qIn: { hf: ["self_attn.q_proj.norm.weight"], gguf: "attn_q_norm_in.weight" },
  kIn: { hf: ["self_attn.k_proj.norm.weight"], gguf: "attn_k_norm_in.weight" },
  vIn: { hf: ["self_attn.v_proj.norm.weight"], gguf: "attn_v_norm_in.weight" },
  oIn: { hf: ["self_attn.o_proj.norm.weight"], gguf: "attn_output_norm_in.weight" },
  gateIn: { hf: ["mlp.gate_proj.norm.weight"], gguf: "ffn_gate_norm_in.weight" },
  upIn: { hf: ["mlp.up_proj.norm.weight"], gguf: "ffn_up_norm_in.weight" },
  downIn: { hf: ["mlp.down_proj.norm.weight"], gguf: "ffn_down_norm_in.weight" },
};

export const GLOBAL_TENSORS: Readonly<Record<GlobalRole, { readonly hf: readonly string[]; readonly gguf: string }>> = {
  embed: { hf: ["model.embed_tokens.weight"], gguf: "token_embd.weight" },
  norm: { hf: ["model.norm.weight"], gguf: "output_norm.weight" },
  head: { hf: ["lm_head.weight"], gguf: "output.weight" },
};

export const LINEAR_ROLES: readonly LayerRole[] = ["q", "k", "v", "o", "gate", "up", "down"];

/** The roles a layer of `architecture` must have (with BitNet-embedding's projection norms when `projectionNorms`). */
export function layerRoles(architecture: Architecture, projectionNorms = false): LayerRole[] {
  const roles: LayerRole[] = ["attnNorm", "q", "k", "v", "o", "ffnNorm", "gate", "up", "down"];
  if (architecture.subNorms) roles.push("attnSubNorm", "ffnSubNorm");
  if (architecture.qkNorm) roles.push("qNorm", "kNorm");
  if (architecture.sandwichNorms) roles.push("postAttnNorm", "postFfnNorm");
  if (projectionNorms) roles.push(...Object.values(PROJECTION_NORM_ROLES));
  return roles;
}

/** The norms Gemma3 applies as (1 + w): its own, never BitNet's projection norms. */
export const OFFSET_NORM_ROLES: readonly (LayerRole | "norm")[] = ["attnNorm", "ffnNorm", "postAttnNorm", "postFfnNorm", "qNorm", "kNorm", "norm"];

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

/** Hugging Face model_types and classes of each non-BitNet graph. */
const HF_ARCHITECTURES: readonly { readonly id: ArchitectureId; readonly types: readonly string[]; readonly classes: readonly string[] }[] = [
  { id: "llama", types: ["llama", "mistral"], classes: ["LlamaForCausalLM", "MistralForCausalLM"] },
  { id: "qwen3", types: ["qwen3"], classes: ["Qwen3ForCausalLM", "Qwen3Model"] },
  { id: "gemma3", types: ["gemma3_text"], classes: ["Gemma3ForCausalLM", "Gemma3TextModel"] },
  { id: "minicpm", types: ["minicpm"], classes: ["MiniCPMForCausalLM", "MiniCPMModel"] },
];

/**
 * The graph of a Hugging Face model: sub-norm names decide BitNet layouts (the tensors are what the
 * model computes with), else the model_type or class.
 */
export function detectHfArchitecture(config: Record<string, unknown>, names: ReadonlySet<string>, file: string): Architecture {
  const has = (pattern: RegExp) => [...names].some((n) => pattern.test(n));
  if (has(/\.self_attn\.inner_attn_ln\.weight$/) || has(/\.mlp\.ffn_layernorm\.weight$/)) return ARCHITECTURES.bitnet;
  if (has(/\.self_attn\.attn_sub_norm\.weight$/) || has(/\.mlp\.ffn_sub_norm\.weight$/)) return ARCHITECTURES["bitnet-b1.58"];
  const modelType = typeof config.model_type === "string" ? config.model_type : "";
  const classes = Array.isArray(config.architectures) ? (config.architectures as unknown[]) : [];
  const known = HF_ARCHITECTURES.find((a) => a.types.includes(modelType)) ?? HF_ARCHITECTURES.find((a) => classes.some((c) => typeof c === "string" && a.classes.includes(c)));
  if (known !== undefined) return ARCHITECTURES[known.id];
  throw modelError(
    file,
    `the runtime does not know the architecture ${JSON.stringify(classes[0] ?? modelType ?? "unknown")} (model_type ${JSON.stringify(modelType)})`,
    "The runtime runs BitNet (1bitLLM, 2B-4T), Llama, Qwen3, Gemma3 (text) and MiniCPM models.",
  );
}

/** config.json's hidden_act, or the architecture's default. */
export function activationOf(config: Record<string, unknown>, architecture: Architecture, file: string): Activation {
  const act = config.hidden_act ?? config.hidden_activation;
  if (act === undefined || act === null) return architecture.defaultActivation;
  if (act === "silu" || act === "swish") return "silu";
  if (act === "relu2") return "relu2";
  if (act === "gelu_pytorch_tanh" || act === "gelu_tanh" || act === "gelu_new") return "gelu_tanh";
  throw modelError(file, `hidden_act ${JSON.stringify(act)} is not supported by the runtime (silu, relu2 and gelu_pytorch_tanh are)`);
}
