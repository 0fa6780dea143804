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
 */
export interface GgufTarget {
  readonly id: GgufTargetId;
  readonly runtime: GgufRuntime;
  readonly architecture: string;
  /** The output head is token_embd (no output.weight may be written). */
  readonly tiedOutput: boolean;
  /** Head count when this GGUF tensor's rows must be permuted for NORM rope. */
  permuteHeads(ggufName: string): number | undefined;
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
    return { id, runtime, architecture: architectureFor(id, kind, hiddenAct), tiedOutput: true, permuteHeads: () => undefined };
  }
  if (kind === "llama") {
    if (d.headDim % 2 !== 0) throw new B158Error("E_GGUF_EXPORT", `${b158.name}: head_dim ${d.headDim} is odd; rope needs pairs`, { details: { file: b158.name } });
    const tied = !b158.tensors.some((t) => t.gguf_name === "output.weight");
    return {
      id,
      runtime,
      architecture: "llama",
      tiedOutput: tied,
      permuteHeads: (name) => (/\.attn_q\.weight$/.test(name) ? d.heads : /\.attn_k\.weight$/.test(name) ? d.kvHeads : undefined),
    };
  }
  throw new B158Error("E_GGUF_EXPORT", `${b158.name}: b158 knows no GGUF architecture for ${hfArchitecture || "this model"} (family ${family})`, {
    details: { file: b158.name, architecture: hfArchitecture, family },
    hint: "GGUF export supports the BitNet families and Llama-architecture checkpoints; keep the .b158 for other runtimes.",
  });
}

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
  if (d.headDim !== d.hidden / d.heads) kvs.push(u32("attention.key_length", d.headDim), u32("attention.value_length", d.headDim));
  // written for every architecture: runtimes that read it (bitnet.cpp PR #605) pick the FFN activation by it
  const act = c.hidden_act;
  if (typeof act === "string") kvs.push({ key: `${a}.hidden_activation`, value: { type: "string", value: act } });
  return kvs;
}
