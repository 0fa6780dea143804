import { BITNET_CPP_ARCHITECTURES, GGUF_TABLES, type GgufTableId } from "./spec.js";

/**
 * What each runtime does with a GGUF, beyond its type ids (spec.ts GGUF_TABLES): which tables b158
 * writes for (`--target`), the architectures each runtime has, and the FFN activation each one's
 * graph computes for them. docs/gguf.md gives the sources.
 */

/** The tables b158 can write a GGUF for (`--target`). PrismML's fork is read, never written for. */
export const GGUF_TARGET_IDS = ["llama.cpp", "bitnet.cpp-2024", "bitnet.cpp-2026"] as const satisfies readonly GgufTableId[];
export type GgufTargetId = (typeof GGUF_TARGET_IDS)[number];

/** The metadata key where b158 records the target, read back to pick the type table. llama.cpp ignores keys it does not know. */
export const TARGET_KEY = "b158.target";
/**
 * Whether the model's linears quantize their input: "int8-per-token" (BitNet's ActQuant) or "none"
 * (a fake-quantized model's plain nn.Linear). b158's runtime reads it; llama.cpp ignores it.
 */
export const ACTIVATION_QUANTIZATION_KEY = "b158.activation_quantization";

/** The ggml types of ternary weights each target writes (plus F32/F16 reference weights, which every target holds). */
const TERNARY_TYPES: Readonly<Record<GgufTargetId, readonly string[]>> = {
  "llama.cpp": ["TQ1_0", "TQ2_0", "Q2_0"],
  "bitnet.cpp-2024": ["I2_S", "TL1", "TL2"],
  "bitnet.cpp-2026": ["I2_S", "TL1", "TL2"],
};
const FLOAT_WEIGHT_TYPES = ["F32", "F16"];

export function isGgufTargetId(value: unknown): value is GgufTargetId {
  return typeof value === "string" && (GGUF_TARGET_IDS as readonly string[]).includes(value);
}

/** The ggml types of linear weights a target can be written with. */
export function targetWeightTypes(target: GgufTargetId): readonly string[] {
  return [...TERNARY_TYPES[target], ...FLOAT_WEIGHT_TYPES];
}

/**
 * The target a weight type gets when none is named: what today's published GGUFs use. I2_S/TL1/TL2
 * -> the 2024-2025 fork's ids (the official 2B-4T GGUF: I2_S 36, file type 40); TQ1_0/TQ2_0/Q2_0
 * and float weights -> mainline.
 */
export function defaultTarget(weightType: string): GgufTargetId {
  return GGUF_TARGET_IDS.find((t) => targetWeightTypes(t).includes(weightType)) ?? "llama.cpp";
}

/** general.file_type for a file whose linear weights are `weightType`, in the target's numbering. */
export function targetFileType(target: GgufTargetId, weightType: string): number {
  const name = weightType === "F32" ? "ALL_F32" : `MOSTLY_${weightType}`;
  const value = GGUF_TABLES[target].fileTypes[name];
  if (value === undefined) throw new Error(`${target} has no file type ${name}`);
  return value;
}

/** "silu" | "relu2" | "gelu" | another HF `hidden_act` string as given. */
export type Activation = string;

/** HF `hidden_act` spellings of the same function. */
export function normalizeActivation(act: string): Activation {
  const a = act.toLowerCase();
  if (a === "swish" || a === "silu") return "silu";
  if (a === "relu2" || a === "relu_squared" || a === "relu_sqr") return "relu2";
  return a;
}

/**
 * The gated-FFN activation a runtime's graph computes for an architecture, or undefined when b158
 * does not know (or the runtime has no such architecture).
 * - mainline llama.cpp: arch `bitnet` hard-codes SiLU (src/models/bitnet.cpp, LLM_FFN_SILU; it
 *   does not read `bitnet.hidden_activation`); `llama` is SiLU. No `bitnet-b1.58`/`bitnet-25`.
 * - bitnet.cpp 2024-2025: `bitnet-b1.58`/`bitnet-25` relu2 (build_bitnet_158, LLM_FFN_RELU_SQR),
 *   `bitnet` and `llama` SiLU.
 * - bitnet.cpp 2026 (submodule 390c3077): the builders were merged and every bitnet arch got the
 *   hard-coded SiLU (BitNet#588/#602: perplexity 99.8 instead of 17.1 for 2B-4T's official GGUF).
 */
export function runtimeActivation(table: GgufTableId, architecture: string): Activation | undefined {
  if (architecture === "llama" || architecture === "qwen3" || architecture === "minicpm") return "silu";
  if (architecture === "gemma3") return "gelu_pytorch_tanh";
  if (architecture === "bitnet") return "silu";
  if (BITNET_CPP_ARCHITECTURES.includes(architecture)) return table === "bitnet.cpp-2024" ? "relu2" : table === "bitnet.cpp-2026" ? "silu" : undefined;
  return undefined;
}

/** Whether a runtime has the architecture (false: it refuses to load the file), or undefined when b158 does not know. */
export function runtimeHasArchitecture(table: GgufTableId, architecture: string): boolean | undefined {
  if (BITNET_CPP_ARCHITECTURES.includes(architecture)) return GGUF_TABLES[table].runtime === "bitnet.cpp";
  if (architecture === "bitnet" || architecture === "llama" || architecture === "minicpm") return true;
  // qwen3 / gemma3: mainline since 2025; bitnet.cpp's fork added both for BitNet-embedding (submodule 355c0c4,
  // 2026-05, still the 2024-2025 ids) and the 2026 fork has them. Their *_norm_in tensors only load in the fork (gguf-compat.ts)
  if (architecture === "qwen3" || architecture === "gemma3") return true;
  return undefined;
}

/** BitNet families get the BitNet architectures; Llama-architecture checkpoints get `llama`. */
const BITNET_FAMILIES = ["bitnet-1bitllm", "bitnet-latent", "bitnet-packed"];
const LLAMA_ARCHITECTURES = ["LlamaForCausalLM", "MistralForCausalLM"];

/**
 * bitnet / llama as before; qwen3 (Ternary-Bonsai, BitNet-embedding 0.6B), gemma3 (BitNet-embedding
 * 270M only: a plain fake-quantized Gemma3 is no known family) and minicpm (BitCPM4) keep their
 * llama.cpp architecture.
 */
export type ArchitectureKind = "bitnet" | "llama" | "qwen3" | "gemma3" | "minicpm";

/** Which kind of GGUF architecture a model gets (undefined: b158 knows no GGUF architecture for it). */
export function architectureKind(family: string, hfArchitecture: string | undefined, modelType: unknown): ArchitectureKind | undefined {
  if (BITNET_FAMILIES.includes(family)) return "bitnet";
  if (LLAMA_ARCHITECTURES.includes(hfArchitecture ?? "") || modelType === "llama" || modelType === "mistral") return "llama";
  if (modelType === "qwen3" || hfArchitecture === "Qwen3ForCausalLM") return "qwen3";
  if (modelType === "gemma3_text" && family === "bitnet-embedding") return "gemma3";
  if (modelType === "minicpm" || hfArchitecture === "MiniCPMForCausalLM") return "minicpm";
  return undefined;
}

/**
 * The `general.architecture` b158 writes: a relu2 BitNet model (2B-4T) gets the fork's
 * `bitnet-b1.58` (the arch whose graph computed relu2), anything else BitNet `bitnet`.
 */
export function architectureFor(target: GgufTargetId, kind: ArchitectureKind, hiddenAct: string | undefined): string {
  if (kind !== "bitnet") return kind;
  const relu2 = hiddenAct !== undefined && normalizeActivation(hiddenAct) === "relu2";
  return GGUF_TABLES[target].runtime === "bitnet.cpp" && relu2 ? "bitnet-b1.58" : "bitnet";
}
