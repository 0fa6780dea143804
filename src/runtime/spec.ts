import { B158Error } from "../errors.js";

/**
 * What the runtime needs to know about a model to run it: the graph (an architecture from
 * ./architectures.ts), its dimensions and its numerics. Built from a Hugging Face config.json
 * (checkpoints and .b158 files, which embed it) or from GGUF metadata (./gguf-spec.ts).
 */
export type ArchitectureId = "bitnet" | "bitnet-b1.58" | "llama" | "qwen3" | "gemma3" | "minicpm";
/** gelu_tanh: GELU with the tanh approximation (Gemma's gelu_pytorch_tanh). */
export type Activation = "silu" | "relu2" | "gelu_tanh";
/** How an embedding model turns the final hidden states into one vector (sentence-transformers' Pooling). */
export type Pooling = "last" | "mean" | "cls";

/**
 * Which rows rope rotates together. "half": Hugging Face's rotate_half, pairing element i of a
 * head with element i + headDim/2 (checkpoints and .b158 files hold Q/K rows in this order).
 * "interleaved": llama.cpp's NORM rope, pairing 2i with 2i + 1, for GGUFs of arch llama, whose
 * converter permuted the Q/K rows of each head to suit it. Both compute the same attention.
 */
export type RopeLayout = "half" | "interleaved";

export type RopeScaling =
  | { readonly type: "linear"; readonly factor: number }
  | { readonly type: "llama3"; readonly factor: number; readonly lowFreqFactor: number; readonly highFreqFactor: number; readonly originalMaxPositions: number }
  /** LongRoPE (MiniCPM4): inverse frequency i divided by factors[i]; cos and sin multiplied by attentionFactor. */
  | { readonly type: "longrope"; readonly factors: readonly number[]; readonly attentionFactor: number };

export interface ModelSpec {
  readonly architecture: ArchitectureId;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly vocabSize: number;
  readonly rmsNormEps: number;
  readonly rope: { readonly theta: number; readonly layout: RopeLayout; readonly scaling?: RopeScaling };
  readonly activation: Activation;
  /** BitNet's extra RMSNorms before o_proj and down_proj. */
  readonly subNorms: boolean;
  /** A per-head RMSNorm of q and of k before rope (Qwen3, Gemma3). */
  readonly qkNorm: boolean;
  /** BitNet-embedding: an RMSNorm before each of the seven projections (BitLinear's input norm). */
  readonly projectionNorms: boolean;
  /** Gemma3: RMSNorms of the attention output and of the FFN output, before each residual add. */
  readonly sandwichNorms: boolean;
  /**
   * Gemma3's own norms compute x_normed * (1 + w) from Hugging Face weights (1; GGUFs store w + 1:
   * 0). The model adds it to those norms' weights at load; projection norms never get it.
   */
  readonly normOffset: 0 | 1;
  /** The token embedding is multiplied by this (Gemma3 sqrt(hidden), MiniCPM scale_emb; else 1). */
  readonly embeddingScale: number;
  /** Each attention and FFN output is multiplied by this before its residual add (MiniCPM scale_depth / sqrt(layers); else 1). */
  readonly residualScale: number;
  /** The logits are multiplied by this (MiniCPM dim_model_base / hidden; else 1). */
  readonly logitScale: number;
  /** Attention scores are q.k times this (1 / sqrt(head_dim); Gemma3 query_pre_attn_scalar^-1/2). */
  readonly attentionScale: number;
  /** Gemma3's sliding-window layers: each attends to the last `size` positions (itself included), with rope base `theta`. */
  readonly slidingWindow?: { readonly size: number; readonly layers: readonly boolean[]; readonly theta: number };
  /** An embedding model: its output is the pooled final hidden state (L2-normalized when `normalize`). */
  readonly pooling?: { readonly mode: Pooling; readonly normalize: boolean };
  /** The output head is the token embedding. */
  readonly tiedHead: boolean;
  readonly maxPositions: number;
  readonly bosTokenId: number | undefined;
  /** Tokens that end generation (config.json, generation_config.json or GGUF metadata). */
  readonly eosTokenIds: readonly number[];
}

export function modelError(file: string, message: string, hint?: string): B158Error {
  return new B158Error("E_MODEL_UNSUPPORTED", `${file}: ${message}`, { details: { file }, ...(hint === undefined ? {} : { hint }) });
}

export function num(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

/** Token ids from a config field that holds one id or a list of them. */
export function tokenIds(value: unknown): number[] {
  if (typeof value === "number" && Number.isInteger(value)) return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === "number" && Number.isInteger(v));
  return [];
}

/** Checks the dimensions fit together, so the forward pass can trust them. */
export function checkSpec(spec: ModelSpec, file: string): ModelSpec {
  const { hiddenSize: E, heads: H, kvHeads: KV, headDim: D, intermediateSize: F, layers, vocabSize: V } = spec;
  const positive = { hidden_size: E, num_attention_heads: H, num_key_value_heads: KV, head_dim: D, intermediate_size: F, num_hidden_layers: layers, vocab_size: V };
  for (const [key, value] of Object.entries(positive)) {
    if (!Number.isSafeInteger(value) || value <= 0) throw modelError(file, `${key} is ${value}; the runtime needs a positive integer`);
  }
  if (H % KV !== 0) throw modelError(file, `${H} attention heads cannot share ${KV} key/value heads evenly (grouped-query attention)`);
  if (D % 2 !== 0) throw modelError(file, `head_dim ${D} is odd; rope rotates pairs`);
  if (!(spec.rmsNormEps > 0)) throw modelError(file, `rms_norm_eps ${spec.rmsNormEps} is not positive`);
  if (!(spec.rope.theta > 0)) throw modelError(file, `rope_theta ${spec.rope.theta} is not positive`);
  for (const [key, value] of Object.entries({ embeddingScale: spec.embeddingScale, residualScale: spec.residualScale, logitScale: spec.logitScale, attentionScale: spec.attentionScale })) {
    if (!(Number.isFinite(value) && value > 0)) throw modelError(file, `${key} ${value} is not a positive number`);
  }
  const window = spec.slidingWindow;
  if (window !== undefined && (!Number.isSafeInteger(window.size) || window.size < 1 || window.layers.length !== layers || !(window.theta > 0))) {
    throw modelError(file, `sliding_window ${window.size} over ${window.layers.length} layer types does not fit ${layers} layers`);
  }
  const scaling = spec.rope.scaling;
  if (scaling?.type === "longrope" && (scaling.factors.length !== D / 2 || scaling.factors.some((f) => !(Number.isFinite(f) && f > 0)) || !(scaling.attentionFactor > 0))) {
    throw modelError(file, `rope_scaling longrope needs head_dim / 2 = ${D / 2} positive factors, got ${scaling.factors.length}`);
  }
  return spec;
}

/** config.json's rope_scaling, as transformers reads it (rope_type or the older type). */
export function ropeScaling(config: Record<string, unknown>, file: string): RopeScaling | undefined {
  const raw = config.rope_scaling;
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== "object" || Array.isArray(raw)) throw modelError(file, "rope_scaling is not an object");
  const r = raw as Record<string, unknown>;
  const type = r.rope_type ?? r.type;
  const factor = num(r.factor) ?? 1;
  if (type === "default") return undefined;
  if (type === "linear") return { type: "linear", factor };
  if (type === "longrope") {
    // MiniCPM4's MiniCPMLongRoPE: the factors for the context the model was configured for, and sqrt(1 + ln(scale) / ln(original))
    const original = num(r.original_max_position_embeddings);
    const max = num(config.max_position_embeddings);
    if (original === undefined || max === undefined || !Array.isArray(r.short_factor) || !Array.isArray(r.long_factor)) {
      throw modelError(file, "rope_scaling longrope needs short_factor, long_factor, original_max_position_embeddings and max_position_embeddings");
    }
    const factors = (max > original ? r.long_factor : r.short_factor).map((f) => num(f) ?? Number.NaN);
    return { type: "longrope", factors, attentionFactor: Math.sqrt(1 + Math.log(max / original) / Math.log(original)) };
  }
  if (type === "llama3") {
    return {
      type: "llama3",
      factor,
      lowFreqFactor: num(r.low_freq_factor) ?? 1,
      highFreqFactor: num(r.high_freq_factor) ?? 4,
      originalMaxPositions: num(r.original_max_position_embeddings) ?? 8192,
    };
  }
  throw modelError(file, `rope_scaling type ${JSON.stringify(type)} is not supported by the runtime (linear, llama3 and longrope are)`);
}
