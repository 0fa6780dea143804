import { PROJECTION_NORM } from "../model/family.js";
import { activationOf, detectHfArchitecture } from "./architectures.js";
import { checkSpec, modelError, num, ropeScaling, tokenIds, type ModelSpec } from "./spec.js";

/**
 * A ModelSpec from config.json, as transformers reads it, for checkpoints and .b158 files (which
 * embed config.json and generation_config.json). `vocabSize` comes from the embedding's rows: the
 * tensor is what the model computes with. Each architecture's scalings are its modeling code's:
 * Gemma3 (Gemma3TextScaledWordEmbedding, query_pre_attn_scalar, sliding layers with their own rope
 * base), MiniCPM (modeling_minicpm.py: scale_emb, scale_depth / sqrt(layers), hidden / dim_model_base).
 */
export function specFromHfConfig(
  config: Record<string, unknown>,
  names: ReadonlySet<string>,
  options: {
    readonly file: string;
    readonly vocabSize: number;
    readonly hasHead: boolean;
    readonly generationConfig?: Record<string, unknown> | undefined;
    /** An embedding model's pooling (./pooling.ts), from its sentence-transformers files. */
    readonly pooling?: ModelSpec["pooling"];
  },
): ModelSpec {
  const { file } = options;
  const architecture = detectHfArchitecture(config, names, file);
  const hidden = num(config.hidden_size) ?? 0;
  const heads = num(config.num_attention_heads) ?? 0;
  const layers = num(config.num_hidden_layers) ?? 0;
  const headDim = num(config.head_dim) ?? (heads > 0 ? hidden / heads : 0);
  const eos = [...tokenIds(config.eos_token_id), ...tokenIds(options.generationConfig?.eos_token_id)];
  const id = architecture.id;
  const gemma = id === "gemma3";
  const minicpm = id === "minicpm";
  if (gemma && config.use_bidirectional_attention === true) throw modelError(file, "use_bidirectional_attention is true: the runtime computes causal attention only");
  for (const key of ["attn_logit_softcapping", "final_logit_softcapping"]) {
    if (gemma && config[key] !== undefined && config[key] !== null) throw modelError(file, `${key} is set: the runtime does not soft-cap`);
  }
  const minicpmScale = (key: string) => {
    const v = num(config[key]);
    if (v === undefined) throw modelError(file, `MiniCPM's config.json lacks ${key}`);
    return v;
  };
  return checkSpec(
    {
      architecture: id,
      hiddenSize: hidden,
      intermediateSize: num(config.intermediate_size) ?? 0,
      layers,
      heads,
      kvHeads: num(config.num_key_value_heads) ?? heads,
      headDim,
      vocabSize: options.vocabSize,
      rmsNormEps: num(config.rms_norm_eps) ?? 1e-6,
      rope: {
        // transformers' defaults: BitNetConfig 500000, Gemma3TextConfig 1000000, LlamaConfig / Qwen3Config 10000
        theta: num(config.rope_theta) ?? (id === "bitnet-b1.58" ? 500000 : gemma ? 1000000 : 10000),
        layout: "half",
        ...(ropeScaling(config, file) === undefined ? {} : { scaling: ropeScaling(config, file)! }),
      },
      activation: activationOf(config, architecture, file),
      subNorms: architecture.subNorms,
      qkNorm: architecture.qkNorm,
      projectionNorms: [...names].some((n) => PROJECTION_NORM.test(n)),
      sandwichNorms: architecture.sandwichNorms,
      normOffset: gemma ? 1 : 0,
      embeddingScale: gemma ? Math.fround(Math.sqrt(hidden)) : minicpm ? minicpmScale("scale_emb") : 1,
      residualScale: minicpm ? minicpmScale("scale_depth") / Math.sqrt(layers) : 1,
      logitScale: minicpm ? minicpmScale("dim_model_base") / hidden : 1,
      attentionScale: 1 / Math.sqrt(gemma ? (num(config.query_pre_attn_scalar) ?? headDim) : headDim),
      ...(gemma ? gemmaSlidingWindow(config, layers) : {}),
      tiedHead: config.tie_word_embeddings === true || !options.hasHead,
      maxPositions: num(config.max_position_embeddings) ?? 2048,
      bosTokenId: tokenIds(config.bos_token_id)[0] ?? tokenIds(options.generationConfig?.bos_token_id)[0],
      eosTokenIds: [...new Set(eos)],
      ...(options.pooling === undefined ? {} : { pooling: options.pooling }),
    },
    file,
  );
}

/**
 * Gemma3's sliding-window layers: `layer_types` (transformers >= 4.53) or the older
 * `sliding_window_pattern` (every pattern-th layer global, default 6); their rope base is
 * `rope_local_base_freq` (default 10000). No `sliding_window`: every layer is global.
 */
function gemmaSlidingWindow(config: Record<string, unknown>, layers: number): Pick<ModelSpec, "slidingWindow"> {
  const size = num(config.sliding_window);
  if (size === undefined) return {};
  const types = Array.isArray(config.layer_types) ? config.layer_types : undefined;
  const pattern = num(config.sliding_window_pattern) ?? 6;
  const sliding = types !== undefined ? types.map((t) => t === "sliding_attention") : Array.from({ length: layers }, (_, i) => (i + 1) % pattern !== 0);
  return { slidingWindow: { size, layers: sliding, theta: num(config.rope_local_base_freq) ?? 10000 } };
}
