import { B158Error } from "../errors.js";
import type { B158File } from "../formats/b158/read.js";
import { GGUF_TABLES, type GgufKv, type GgufRuntime } from "../formats/gguf/spec.js";
import { architectureFor, architectureKind, defaultTarget, GGUF_TARGET_IDS, targetWeightTypes, type GgufTargetId } from "../formats/gguf/targets.js";

/**
 * Which runtime (type-id table) and architecture a GGUF is written for, and the `<arch>.*`
 * hyperparameters. The target is named (`--target`) or defaults to what published GGUFs use for
 * the weight type: I2_S/TL1/TL2 -> bitnet.cpp's 2024-2025 ids, TQ1_0/TQ2_0 and floats -> mainline.
 * - BitNet families -> arch `bitnet` (NEOX rope, sub-norms, tied head), or `bitnet-b1.58` for relu2
 *   models (2B-4T) in the bitnet.cpp targets.
 * - Llama-family BitNet checkpoints -> arch `llama` with Q/K permuted.
 * - Qwen3 (Ternary-Bonsai) -> arch `qwen3` (NEOX rope, q/k norms); MiniCPM (BitCPM4) -> arch
 *   `minicpm` (NORM rope: Q/K permuted; scale keys; LongRoPE factor tensors).
 * - BitNet-embedding -> arch `qwen3` / `gemma3` for bitnet.cpp's fork only, exactly as its
 *   embedding converter writes them (`embedding: true`); mainline targets are refused.
 */
export interface GgufTarget {
  readonly id: GgufTargetId;
  readonly runtime: GgufRuntime;
  readonly architecture: string;
  /** The output head is token_embd (no output.weight may be written). */
  readonly tiedOutput: boolean;
  /** Head count when this GGUF tensor's rows must be permuted for NORM rope. */
  permuteHeads(ggufName: string): number | undefined;
  /**
   * BitNet-embedding as bitnet.cpp's convert-bitnet-embedding-to-gguf.py writes it: its keys in its
   * order, tensors in its order (Hugging Face names sorted), every norm F16, Gemma3's own norms w + 1,
   * no output tensor, the pooling type.
   */
  readonly embedding: boolean;
}

interface Dims {
  readonly hidden: number;
  readonly intermediate: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
}

function config(b158: B158File): Readonly<Record<string, unknown>> {
  return b158.header.model.config ?? {};
}

function num(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

function dims(b158: B158File): Dims {
  const c = config(b158);
  const hidden = num(c.hidden_size);
  const intermediate = num(c.intermediate_size);
  const layers = num(c.num_hidden_layers);
  const heads = num(c.num_attention_heads);
  if (hidden === undefined || intermediate === undefined || layers === undefined || heads === undefined) {
    throw new B158Error("E_GGUF_EXPORT", `${b158.name}: config.json lacks hidden_size, intermediate_size, num_hidden_layers or num_attention_heads`, {
      details: { file: b158.name },
      hint: "GGUF needs the model's hyperparameters; convert from a checkpoint with its config.json.",
    });
  }
  const d = { hidden, intermediate, layers, heads, kvHeads: num(c.num_key_value_heads) ?? heads, headDim: num(c.head_dim) ?? hidden / heads };
  // a .b158's config is whatever its writer put there: GGUF stores these as uint32
  for (const [field, value] of Object.entries(d)) {
    if (!Number.isInteger(value) || value < 1 || value > 0xffffffff) {
      throw new B158Error("E_GGUF_EXPORT", `${b158.name}: config.json gives ${field} = ${value}, not a positive 32-bit integer`, {
        details: { file: b158.name, field, value },
        hint: "Convert again from the checkpoint; its config.json must hold the model's integer hyperparameters.",
      });
    }
  }
  return d;
}

/**
 * The target for linear weights of ggml type `weightType`: the one asked for, if it can hold them
 * (else a usage error naming the targets that can), or the default.
 */
export function resolveTargetId(weightType: string, requested: GgufTargetId | undefined, what: string): GgufTargetId {
  if (requested === undefined) return defaultTarget(weightType);
  if (targetWeightTypes(requested).includes(weightType)) return requested;
  const able = GGUF_TARGET_IDS.filter((t) => targetWeightTypes(t).includes(weightType));
  throw new B158Error("E_USAGE", `--target ${requested} cannot hold ${what}: ${GGUF_TABLES[requested].label} has ${targetWeightTypes(requested).join(", ")} weights`, {
    details: { target: requested, weightType },
    hint: able.length > 0 ? `Use --target ${able.join(" or ")}, or another --layout.` : "No GGUF target holds this layout.",
  });
}

export function chooseTarget(b158: B158File, weightType: string, requested?: GgufTargetId): GgufTarget {
  const family = b158.header.model.family;
  const hfArchitecture = b158.header.model.architecture ?? "";
  const id = resolveTargetId(weightType, requested, `${weightType} weights`);
  const runtime = GGUF_TABLES[id].runtime;
  const d = dims(b158);
  const hiddenAct = typeof config(b158).hidden_act === "string" ? (config(b158).hidden_act as string) : undefined;
  const kind = architectureKind(family, hfArchitecture, config(b158).model_type);
  if (kind === "bitnet") {
    const untied = b158.tensors.some((t) => t.gguf_name === "output.weight") && config(b158).tie_word_embeddings === false;
    if (untied) {
      throw new B158Error("E_GGUF_EXPORT", `${b158.name}: has its own lm_head, but the bitnet architectures tie the output head to token_embd`, {
        details: { file: b158.name },
        hint: "No BitNet GGUF architecture can hold an untied head.",
      });
    }
    return { id, runtime, architecture: architectureFor(id, kind, hiddenAct), tiedOutput: true, permuteHeads: () => undefined, embedding: false };
  }
  const tied = !b158.tensors.some((t) => t.gguf_name === "output.weight") || config(b158).tie_word_embeddings === true;
  // llama.cpp's NORM rope (llama, minicpm) rotates adjacent pairs: Q/K rows permuted per head, as its converters do
  const normRope = (name: string) => (/\.attn_q\.weight$/.test(name) ? d.heads : /\.attn_k\.weight$/.test(name) ? d.kvHeads : undefined);
  if (kind === "llama" || kind === "minicpm") {
    if (d.headDim % 2 !== 0) throw new B158Error("E_GGUF_EXPORT", `${b158.name}: head_dim ${d.headDim} is odd; rope needs pairs`, { details: { file: b158.name } });
    return { id, runtime, architecture: kind, tiedOutput: tied, permuteHeads: normRope, embedding: false };
  }
  if (kind === "qwen3" || kind === "gemma3") {
    const embedding = family === "bitnet-embedding";
    if (embedding) {
      const problem = embeddingTargetProblem(id, weightType);
      if (problem !== undefined) throw new B158Error("E_GGUF_EXPORT", `${b158.name}: ${problem.message}`, { details: { file: b158.name, target: id }, hint: problem.hint });
    }
    return { id, runtime, architecture: kind, tiedOutput: embedding || tied, permuteHeads: () => undefined, embedding };
  }
  throw new B158Error("E_GGUF_EXPORT", `${b158.name}: b158 knows no GGUF architecture for ${hfArchitecture || "this model"} (family ${family})`, {
    details: { file: b158.name, architecture: hfArchitecture, family },
    hint: "GGUF export supports the BitNet families and Llama-architecture checkpoints; keep the .b158 for other runtimes.",
  });
}

/**
 * Why a BitNet-embedding model (an RMSNorm before each projection) cannot be written for a target,
 * or undefined when it can: only bitnet.cpp's fork creates `*_norm_in` tensors, and only I2_S (or
 * reference F32 / F16 weights) is what its embedding converter writes.
 */
export function embeddingTargetProblem(target: GgufTargetId, weightType: string): { message: string; hint: string } | undefined {
  if (GGUF_TABLES[target].runtime !== "bitnet.cpp") {
    return {
      message:
        `a BitNet-embedding model cannot be written for ${GGUF_TABLES[target].label}: every projection has its own input RMSNorm (*_norm_in), which mainline llama.cpp's qwen3 / gemma3 do not create ` +
        `(it refuses the file: "wrong number of tensors"), and folding the norms into the weights is impossible (RMSNorm is not linear, and a per-input-channel scale would make the weights non-ternary)`,
      hint: "Write it for bitnet.cpp's fork (--layout i2_s), or keep the .b158, which b158's runtime runs.",
    };
  }
  if (weightType === "TL1" || weightType === "TL2") {
    return {
      message: `bitnet.cpp's embedding converter writes I2_S weights only; ${weightType} for its qwen3 / gemma3 embedding graphs is untested`,
      hint: "Use --layout i2_s.",
    };
  }
  return undefined;
}

/** llama.cpp's pooling_type values (LLAMA_POOLING_TYPE_*). */
export const POOLING_TYPE = { mean: 1, cls: 2, last: 3 } as const;

/** The `<arch>.*` keys llama.cpp's loader reads (required ones first). */
export function archMetadata(b158: B158File, target: GgufTarget, vocabSize: number): GgufKv[] {
  const c = config(b158);
  const d = dims(b158);
  const a = target.architecture;
  const u32 = (key: string, value: number): GgufKv => ({ key: `${a}.${key}`, value: { type: "uint32", value } });
  const f32 = (key: string, value: number): GgufKv => ({ key: `${a}.${key}`, value: { type: "float32", value } });
  const kvs: GgufKv[] = [
    u32("context_length", num(c.max_position_embeddings) ?? 2048),
    u32("embedding_length", d.hidden),
    u32("block_count", d.layers),
    u32("feed_forward_length", d.intermediate),
    u32("attention.head_count", d.heads),
    u32("attention.head_count_kv", d.kvHeads),
    f32("attention.layer_norm_rms_epsilon", num(c.rms_norm_eps) ?? 1e-6),
    f32("rope.freq_base", num(c.rope_theta) ?? 10000),
    u32("rope.dimension_count", d.headDim),
    u32("vocab_size", vocabSize),
  ];
  // llama.cpp's qwen3 converter always writes them (Qwen3's head_dim is its own hyperparameter)
  if (d.headDim !== d.hidden / d.heads || a === "qwen3") kvs.push(u32("attention.key_length", d.headDim), u32("attention.value_length", d.headDim));
  if (a === "minicpm") kvs.push(...minicpmMetadata(b158, f32));
  // written for every architecture: runtimes that read it (bitnet.cpp PR #605) pick the FFN activation by it
  const act = c.hidden_act;
  if (typeof act === "string") kvs.push({ key: `${a}.hidden_activation`, value: { type: "string", value: act } });
  return kvs;
}

/**
 * MiniCPM's scalings as llama.cpp's converter writes them (conversion/minicpm.py): embedding_scale
 * = scale_emb, residual_scale = scale_depth / sqrt(layers), logit_scale = hidden / dim_model_base
 * (llama.cpp divides the logits by it), and LongRoPE's scaling type (its factors are tensors).
 */
function minicpmMetadata(b158: B158File, f32: (key: string, value: number) => GgufKv): GgufKv[] {
  const c = config(b158);
  const d = dims(b158);
  const need = (key: string) => {
    const v = num(c[key]);
    if (v === undefined) throw new B158Error("E_GGUF_EXPORT", `${b158.name}: MiniCPM's config.json lacks ${key}`, { details: { file: b158.name } });
    return v;
  };
  const kvs = [f32("embedding_scale", need("scale_emb")), f32("residual_scale", need("scale_depth") / Math.sqrt(d.layers)), f32("logit_scale", d.hidden / need("dim_model_base"))];
  const scaling = longRope(b158);
  if (scaling !== undefined) kvs.push({ key: "minicpm.rope.scaling.type", value: { type: "string", value: "longrope" } });
  return kvs;
}

/** MiniCPM's LongRoPE factors (head_dim / 2 each), when config.json has them. */
export function longRope(b158: B158File): { readonly long: number[]; readonly short: number[] } | undefined {
  const scaling = config(b158).rope_scaling as Record<string, unknown> | null | undefined;
  const type = scaling?.rope_type ?? scaling?.type;
  if (type !== "longrope" && type !== "su") return undefined;
  const list = (value: unknown) => (Array.isArray(value) ? value.map((v) => num(v) ?? Number.NaN) : undefined);
  const long = list(scaling!.long_factor);
  const short = list(scaling!.short_factor);
  const d = dims(b158);
  if (long === undefined || short === undefined || long.length !== d.headDim / 2 || short.length !== d.headDim / 2 || [...long, ...short].some((f) => !(f > 0))) {
    throw new B158Error("E_GGUF_EXPORT", `${b158.name}: rope_scaling longrope needs head_dim / 2 = ${d.headDim / 2} positive long_factor and short_factor values`, { details: { file: b158.name } });
  }
  return { long, short };
}

/**
 * BitNet-embedding's keys, in the order bitnet.cpp's embedding converter writes them (after
 * general.architecture and general.name): its hyperparameters, general.file_type, the pooling type.
 */
export function embeddingMetadata(b158: B158File, target: GgufTarget, fileType: number, pooling: number, vocabRows: number): GgufKv[] {
  const c = config(b158);
  const d = dims(b158);
  const a = target.architecture;
  const u32 = (key: string, value: number): GgufKv => ({ key: `${a}.${key}`, value: { type: "uint32", value } });
  const f32 = (key: string, value: number): GgufKv => ({ key: `${a}.${key}`, value: { type: "float32", value } });
  const theta = num(c.rope_theta);
  const eps = num(c.rms_norm_eps);
  return [
    u32("block_count", d.layers),
    u32("context_length", num(c.max_position_embeddings) ?? 32768),
    u32("embedding_length", d.hidden),
    u32("feed_forward_length", d.intermediate),
    u32("attention.head_count", d.heads),
    u32("attention.head_count_kv", d.kvHeads),
    u32("vocab_size", num(c.vocab_size) ?? vocabRows),
    u32("rope.dimension_count", d.headDim),
    u32("attention.key_length", d.headDim),
    u32("attention.value_length", d.headDim),
    ...(theta === undefined ? [] : [f32("rope.freq_base", theta)]),
    ...(eps === undefined ? [] : [f32("attention.layer_norm_rms_epsilon", eps)]),
    { key: "general.file_type", value: { type: "uint32", value: fileType } },
    u32("pooling_type", pooling),
  ];
}
