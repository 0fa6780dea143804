/**
 * b158's library API. Commands are thin wrappers over these; runtimes and scripts can use them
 * directly. Nothing here prints.
 */
export { B158Error, ERROR_CODES, EXIT, isB158Error, type ErrorCode } from "./errors.js";
export { fileSource, memorySource, type ByteSource } from "./io/byte-source.js";

export { DTYPE_BYTES, type Dtype } from "./formats/safetensors/dtypes.js";
export {
  MAX_HEADER_BYTES,
  parseSafetensorsHeader,
  readSafetensorsHeader,
  readTensorBytes,
  readTensorChunks,
  type SafetensorsHeader,
  type SafetensorsTensor,
} from "./formats/safetensors/read.js";
export { parseSafetensorsIndex, type SafetensorsIndex } from "./formats/safetensors/index-file.js";
export { parseHfConfig, type HfConfig, type HfQuantizationConfig } from "./formats/hf-config/read.js";

export type { CheckpointFiles } from "./checkpoint/files.js";
export { registerSourceResolver, resolveSource, type SourceResolver } from "./checkpoint/resolve.js";
export { openCheckpoint, type Checkpoint, type CheckpointTensor } from "./checkpoint/open.js";

export type { Diagnostic } from "./model/diagnostics.js";
export { detectFamily, type DetectOptions, type Family, type FamilyId, type ScaleConvention, type SemanticsSource, type WeightSemantics, type WeightsOverride } from "./model/family.js";
export { buildPlan, planCheckpoint, type LayoutEstimate, type PlanEntry, type PlanOptions, type TensorAction, type TensorPlan, type TensorRole } from "./model/plan.js";
export { sampleTensor, SAMPLE_BYTES, type Granularity, type ValueSample } from "./model/sample.js";
export { scanCheckpoint, type ScanResult } from "./model/scan.js";
export {
  inspectCheckpoint,
  validateCheckpoint,
  type CheckpointReport,
  type ValidateReport,
} from "./report/checkpoint-report.js";

export * from "./pack/index.js";

export { openB158, openB158File, type B158File, type B158Tensor } from "./formats/b158/read.js";
export type { B158Header, B158TensorEntry } from "./formats/b158/header.js";
export { isB158File } from "./formats/b158/detect.js";
export { convertCheckpoint, type ConvertOptions, type ConvertSummary } from "./convert/convert.js";
export { validateB158, type B158Validation } from "./convert/validate-b158.js";
export { inspectB158, type B158Report } from "./report/b158-report.js";

export { openGguf, openGgufFile, type GgufFile, type GgufTensorInfo } from "./formats/gguf/read.js";
export { GgufWriter, layoutGguf, type GgufLayout, type GgufTensorSpec } from "./formats/gguf/write.js";
export { ggmlType, ggmlTypeTable, GGUF_TABLES, type GgmlType, type GgufKv, type GgufRuntime, type GgufTableId, type GgufValue } from "./formats/gguf/spec.js";
export { GGUF_TARGET_IDS, TARGET_KEY, type GgufTargetId } from "./formats/gguf/targets.js";
export { ggufRefusals, type Refusal } from "./formats/gguf/refusals.js";
export { isGgufFile } from "./formats/b158/detect.js";
export { exportGguf, type EmbeddingType, type GgufExportOptions, type GgufExportSummary, type WeightType } from "./export/gguf.js";
export { convertCheckpointToGguf, type ConvertGgufOptions } from "./export/convert-gguf.js";
export { inspectGguf, validateGgufReport, type GgufReport } from "./report/gguf-report.js";

export {
  loadModel,
  openModelSource,
  Model,
  Generation,
  type LoadOptions,
  type LoadProgress,
  type GenerateOptions,
  type GeneratedToken,
  type GenerationStats,
  type ModelInfo,
} from "./runtime/model.js";
export type { ModelSpec, ArchitectureId, Activation, Pooling } from "./runtime/spec.js";
export { ARCHITECTURES, type Architecture } from "./runtime/architectures.js";
export { loadTokenizer, TextStream, type Tokenizer } from "./runtime/tokenizer.js";
export { Sampler, type SamplingOptions } from "./runtime/sampler.js";
export { evaluate, compare, perplexity, DEFAULT_EVAL_TEXT, DEFAULT_THRESHOLDS, type EvalOptions, type EvalReport, type EvalThresholds, type Comparison, type PositionMetrics, type Check } from "./runtime/eval.js";
export type { ModelSource, LinearWeight, TokenizerFiles } from "./runtime/sources/source.js";
export type { LatentSemantics } from "./runtime/sources/checkpoint.js";
export { createKernels } from "./runtime/kernels/index.js";
export type { KernelContext, KernelBackend, KernelOptions, ActivationMode } from "./runtime/kernels/api.js";
export { readNpy, readNpyFile, writeNpy, NpyWriter, type NpyMatrix } from "./formats/npy/npy.js";
export { SentencePieceEncoder } from "./formats/sentencepiece/encode.js";
