import { B158Error } from "../errors.js";

/**
 * What the runtime needs to know about a model to run it: the graph (an architecture from
 * ./architectures.ts), its dimensions and its numerics. Built from a Hugging Face config.json
 * (checkpoints and .b158 files, which embed it) or from GGUF metadata (./gguf-spec.ts).
 */
export type ArchitectureId = "bitnet" | "bitnet-b1.58" | "llama";
export type Activation = "silu" | "relu2";

/**
 * Which rows rope rotates together. "half": Hugging Face's rotate_half, pairing element i of a
 * head with element i + headDim/2 (checkpoints and .b158 files hold Q/K rows in this order).
 * "interleaved": llama.cpp's NORM rope, pairing 2i with 2i + 1, for GGUFs of arch llama, whose
 * converter permuted the Q/K rows of each head to suit it. Both compute the same attention.
 */
export type RopeLayout = "half" | "interleaved";

export type RopeScaling =
  | { readonly type: "linear"; readonly factor: number }
  | { readonly type: "llama3"; readonly factor: number; readonly lowFreqFactor: number; readonly highFreqFactor: number; readonly originalMaxPositions: number };

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
  if (type === "llama3") {
    return {
      type: "llama3",
      factor,
      lowFreqFactor: num(r.low_freq_factor) ?? 1,
      highFreqFactor: num(r.high_freq_factor) ?? 4,
      originalMaxPositions: num(r.original_max_position_embeddings) ?? 8192,
    };
  }
  throw modelError(file, `rope_scaling type ${JSON.stringify(type)} is not supported by the runtime (linear and llama3 are)`);
}
