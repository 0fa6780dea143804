import { activationOf, detectHfArchitecture } from "./architectures.js";
import { checkSpec, num, ropeScaling, tokenIds, type ModelSpec } from "./spec.js";

/**
 * A ModelSpec from config.json, as transformers reads it, for checkpoints and .b158 files (which
 * embed config.json and generation_config.json). `vocabSize` comes from the embedding's rows: the
 * tensor is what the model computes with.
 */
export function specFromHfConfig(
  config: Record<string, unknown>,
  names: ReadonlySet<string>,
  options: { readonly file: string; readonly vocabSize: number; readonly hasHead: boolean; readonly generationConfig?: Record<string, unknown> | undefined },
): ModelSpec {
  const { file } = options;
  const architecture = detectHfArchitecture(config, names, file);
  const hidden = num(config.hidden_size) ?? 0;
  const heads = num(config.num_attention_heads) ?? 0;
  const eos = [...tokenIds(config.eos_token_id), ...tokenIds(options.generationConfig?.eos_token_id)];
  return checkSpec(
    {
      architecture: architecture.id,
      hiddenSize: hidden,
      intermediateSize: num(config.intermediate_size) ?? 0,
      layers: num(config.num_hidden_layers) ?? 0,
      heads,
      kvHeads: num(config.num_key_value_heads) ?? heads,
      headDim: num(config.head_dim) ?? (heads > 0 ? hidden / heads : 0),
      vocabSize: options.vocabSize,
      rmsNormEps: num(config.rms_norm_eps) ?? 1e-6,
      rope: {
        // transformers' BitNetConfig defaults rope_theta to 500000, LlamaConfig to 10000
        theta: num(config.rope_theta) ?? (architecture.id === "bitnet-b1.58" ? 500000 : 10000),
        layout: "half",
        ...(ropeScaling(config, file) === undefined ? {} : { scaling: ropeScaling(config, file)! }),
      },
      activation: activationOf(config, architecture, file),
      subNorms: architecture.subNorms,
      tiedHead: config.tie_word_embeddings === true || !options.hasHead,
      maxPositions: num(config.max_position_embeddings) ?? 2048,
      bosTokenId: tokenIds(config.bos_token_id)[0] ?? tokenIds(options.generationConfig?.bos_token_id)[0],
      eosTokenIds: [...new Set(eos)],
    },
    file,
  );
}
