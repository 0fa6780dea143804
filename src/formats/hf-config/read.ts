import { B158Error } from "../../errors.js";
import { describeSchemaErrors, getValidator } from "../../schemas.js";
import { isJsonObject, parseStrictJson, StrictJsonError, type JsonValue } from "../strict-json.js";

/** The config.json fields b158 uses (schemas/hf-config.schema.json). Unknown fields are kept in `raw`. */
export interface HfConfig {
  readonly raw: { readonly [key: string]: JsonValue };
  readonly architectures: readonly string[];
  readonly modelType: string | undefined;
  readonly hiddenSize: number | undefined;
  readonly intermediateSize: number | undefined;
  readonly numLayers: number | undefined;
  readonly numHeads: number | undefined;
  readonly numKvHeads: number | undefined;
  readonly headDim: number | undefined;
  readonly vocabSize: number | undefined;
  readonly hiddenAct: string | undefined;
  readonly tieWordEmbeddings: boolean | undefined;
  readonly quantization: HfQuantizationConfig | undefined;
  /**
   * Group-wise affine quantization declared by bits and group size: mlx_lm's `quantization` (and
   * its copy in `quantization_config`), or a quantization_config with `bits` / `group_size` (PrismML's).
   */
  readonly affineQuantization: { readonly bits: number; readonly groupSize: number; readonly key: string } | undefined;
}

export interface HfQuantizationConfig {
  readonly quantMethod: string;
  readonly linearClass: "bitlinear" | "autobitlinear" | undefined;
  readonly quantizationMode: "online" | "offline" | undefined;
  readonly modulesToNotConvert: readonly string[];
  readonly useRmsNorm: boolean;
}

/** Parses and validates config.json text. `file` names the file in errors. */
export function parseHfConfig(text: string, file: string): HfConfig {
  let raw: JsonValue;
  try {
    raw = parseStrictJson(text);
  } catch (error) {
    const reason = error instanceof StrictJsonError ? error.message : String(error);
    throw new B158Error("E_CONFIG_INVALID", `${file}: not valid JSON (${reason})`, {
      details: { file },
      hint: "Fix or re-download config.json.",
    });
  }
  if (!isJsonObject(raw)) {
    throw new B158Error("E_CONFIG_INVALID", `${file}: top level is not a JSON object`, { details: { file } });
  }
  const validate = getValidator("hf-config");
  if (!validate(raw)) {
    throw new B158Error("E_CONFIG_INVALID", `${file}: ${describeSchemaErrors(validate.errors)}`, {
      details: { file, errors: validate.errors },
      hint: "config.json breaks schemas/hf-config.schema.json; fix the named fields.",
    });
  }
  const int = (key: string): number | undefined => (typeof raw[key] === "number" ? (raw[key] as number) : undefined);
  const qc = raw.quantization_config;
  let quantization: HfQuantizationConfig | undefined;
  if (isJsonObject(qc) && typeof qc.quant_method === "string") {
    quantization = {
      quantMethod: qc.quant_method as string,
      linearClass: qc.linear_class as HfQuantizationConfig["linearClass"],
      quantizationMode: qc.quantization_mode as HfQuantizationConfig["quantizationMode"],
      modulesToNotConvert: Array.isArray(qc.modules_to_not_convert) ? (qc.modules_to_not_convert as string[]) : [],
      useRmsNorm: qc.use_rms_norm === true,
    };
  }
  const affine = (key: string) => {
    const q = raw[key];
    return isJsonObject(q) && typeof q.bits === "number" && typeof q.group_size === "number" ? { bits: q.bits, groupSize: q.group_size, key } : undefined;
  };
  return {
    raw,
    affineQuantization: affine("quantization") ?? affine("quantization_config"),
    architectures: Array.isArray(raw.architectures) ? (raw.architectures as string[]) : [],
    modelType: typeof raw.model_type === "string" ? raw.model_type : undefined,
    hiddenSize: int("hidden_size"),
    intermediateSize: int("intermediate_size"),
    numLayers: int("num_hidden_layers"),
    numHeads: int("num_attention_heads"),
    numKvHeads: int("num_key_value_heads"),
    headDim: int("head_dim"),
    vocabSize: int("vocab_size"),
    hiddenAct: typeof raw.hidden_act === "string" ? raw.hidden_act : undefined,
    tieWordEmbeddings: typeof raw.tie_word_embeddings === "boolean" ? raw.tie_word_embeddings : undefined,
    quantization,
  };
}
