import { openGgufFile, type GgufFile, type GgufTensorInfo } from "../formats/gguf/read.js";
import { ggufRefusals, type Refusal } from "../formats/gguf/refusals.js";
import type { GgufRuntime, GgufValue } from "../formats/gguf/spec.js";
import { countBySeverity, type Diagnostic } from "../model/diagnostics.js";
import { absentRanges } from "../model/names.js";
import { countNonFinite, type FloatLayout } from "../convert/payload-scan.js";
import type { FileScanProgress } from "../convert/validate-b158.js";
import { fromF16Bits } from "../pack/float16.js";
import { scanCode3, type CodeScan } from "../pack/packed-code.js";
import { scanTl1 } from "../pack/tl1.js";
import { scanTq1_0, scanTq2_0 } from "../pack/tq.js";
import { TOOL } from "../version.js";
import type { ValidateReport } from "./checkpoint-report.js";
import { ggufCompat, type GgufCompat } from "./gguf-compat.js";

/**
 * `inspect` and `validate` for GGUF files. The strict reader has already checked the container;
 * here come the checks llama.cpp's model loader makes for the BitNet-relevant architectures
 * (required keys, every tensor its graph creates and no other, shapes against the
 * hyperparameters, the vocabulary against the embedding) and, for validate, a scan of the data.
 */
export interface GgufReport {
  readonly schemaVersion: 1;
  readonly kind: "gguf";
  readonly tool: { readonly name: string; readonly version: string };
  readonly file: string;
  readonly size: number;
  readonly version: number;
  readonly alignment: number;
  readonly dataOffset: number;
  readonly architecture: string | null;
  /** The family of runtimes whose type table the ids were read with. */
  readonly runtime: GgufRuntime;
  /** The runtimes that can load it, in words. */
  readonly loadableBy: string;
  readonly fileType: number | null;
  /** The table the type ids were read with, and why (b158.target, or the evidence). */
  readonly typeTable: GgufCompat["typeTable"];
  /** Each type id the file uses: what it was read as, and every meaning it has elsewhere. */
  readonly typeIds: GgufCompat["typeIds"];
  /** What general.file_type means in each runtime's numbering (informational only). */
  readonly fileTypeMeanings: GgufCompat["fileTypeMeanings"];
  /** Each runtime b158 knows: whether it loads the file, and the FFN activation it computes. */
  readonly runtimes: GgufCompat["runtimes"];
  /** Why b158 will not convert this file's weights as ternary (Q1_0, PQ2_0/PTQ1_0, Hadamard keys). */
  readonly refusals: readonly Refusal[];
  readonly metadata: Readonly<Record<string, string | number | boolean | { readonly type: "array"; readonly itemType: string; readonly length: number }>>;
  readonly tensors: readonly { readonly name: string; readonly type: string; readonly ne: readonly number[]; readonly offset: number; readonly length: number; readonly bitsPerWeight: number }[];
  readonly summary: { readonly tensors: number; readonly parameters: number; readonly byType: Readonly<Record<string, number>>; readonly bitsPerWeight: number };
  readonly diagnostics: readonly Diagnostic[];
}

export async function inspectGguf(path: string): Promise<GgufReport> {
  const file = await openGgufFile(path);
  try {
    const byType: Record<string, number> = {};
    let parameters = 0;
    let bytes = 0;
    const tensors = file.tensors.map((t) => {
      const elements = t.ne.reduce((a, b) => a * b, 1);
      byType[t.type.name] = (byType[t.type.name] ?? 0) + 1;
      parameters += elements;
      bytes += t.length;
      return { name: t.name, type: t.type.name, ne: t.ne, offset: t.fileOffset, length: t.length, bitsPerWeight: elements === 0 ? 0 : (t.length * 8) / elements };
    });
    const architecture = file.scalar("general.architecture");
    const fileType = file.scalar("general.file_type");
    const compat = ggufCompat(file);
    const refusals = ggufRefusals(file);
    return {
      schemaVersion: 1,
      kind: "gguf",
      tool: TOOL,
      file: path,
      size: file.size,
      version: file.version,
      alignment: file.alignment,
      dataOffset: file.dataOffset,
      architecture: typeof architecture === "string" ? architecture : null,
      runtime: file.runtime,
      loadableBy: compat.loadableBy,
      fileType: typeof fileType === "number" ? fileType : null,
      typeTable: compat.typeTable,
      typeIds: compat.typeIds,
      fileTypeMeanings: compat.fileTypeMeanings,
      runtimes: compat.runtimes,
      refusals,
      metadata: Object.fromEntries(file.kvs.map(({ key, value }) => [key, summarize(value)])),
      tensors,
      summary: { tensors: tensors.length, parameters, byType, bitsPerWeight: parameters === 0 ? 0 : (bytes * 8) / parameters },
      diagnostics: fileDiagnostics(file, compat, refusals),
    };
  } finally {
    await file.close();
  }
}

export async function validateGgufReport(path: string, onProgress?: (progress: FileScanProgress) => void): Promise<ValidateReport> {
  const file = await openGgufFile(path);
  try {
    const diagnostics = fileDiagnostics(file, ggufCompat(file), ggufRefusals(file));
    let bytesScanned = 0;
    const totalBytes = file.tensors.reduce((sum, t) => sum + t.length, 0);
    for (const [i, t] of file.tensors.entries()) {
      const problem = await scanTensor(file, t);
      bytesScanned += t.length;
      onProgress?.({ tensor: t.name, done: i + 1, total: file.tensors.length, layout: t.type.name, shape: [...t.ne].reverse(), bytes: t.length, doneBytes: bytesScanned, totalBytes });
      if (problem !== undefined) diagnostics.push({ severity: "error", code: problem.code, tensor: t.name, message: `"${t.name}" (${t.type.name}): ${problem.message}` });
    }
    const counts = countBySeverity(diagnostics);
    return {
      schemaVersion: 1,
      kind: "gguf",
      tool: TOOL,
      source: path,
      ok: counts.error === 0,
      family: null,
      tensors: file.tensors.length,
      tensorsScanned: file.tensors.length,
      bytesScanned,
      diagnostics,
      summary: { errors: counts.error, warnings: counts.warning },
    };
  } finally {
    await file.close();
  }
}

/** The loader's model checks, what the type ids and runtimes make of the file, and what b158 refuses. */
function fileDiagnostics(file: GgufFile, compat: GgufCompat, refusals: readonly Refusal[]): Diagnostic[] {
  return [
    ...checkModel(file),
    ...compat.diagnostics,
    ...refusals.map((r): Diagnostic => ({ severity: "warning", code: "W_GGUF_REFUSED", message: `b158 will not convert this file (E_FORMAT_REFUSED): ${r.message}` })),
  ];
}

function summarize(value: GgufValue): GgufReport["metadata"][string] {
  if (value.type === "array") return { type: "array", itemType: value.itemType, length: value.value.length };
  return typeof value.value === "bigint" ? Number(value.value) : value.value;
}

const BITNET_ARCHITECTURES = ["bitnet", "bitnet-b1.58", "bitnet-25"];
const LAYER_TENSORS = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"];
const SUB_NORMS = ["attn_sub_norm", "ffn_sub_norm"];
/** bitnet.cpp's BitNet-embedding tensors: its qwen3 / gemma3 create them when present (TENSOR_NOT_REQUIRED). */
const NORM_IN = ["attn_q_norm_in", "attn_k_norm_in", "attn_v_norm_in", "attn_output_norm_in", "ffn_gate_norm_in", "ffn_up_norm_in", "ffn_down_norm_in"];

/** The tensors each checked architecture's loader creates: per layer (required, optional) and global optional ones. */
const ARCH_TENSORS: Readonly<Record<string, { readonly layer: readonly string[]; readonly optionalLayer: readonly string[]; readonly optionalGlobal: readonly string[] }>> = {
  ...Object.fromEntries(BITNET_ARCHITECTURES.map((a) => [a, { layer: [...LAYER_TENSORS, ...SUB_NORMS], optionalLayer: [], optionalGlobal: [] }])),
  llama: { layer: LAYER_TENSORS, optionalLayer: [], optionalGlobal: ["output.weight", "rope_freqs.weight"] },
  qwen3: { layer: [...LAYER_TENSORS, "attn_q_norm", "attn_k_norm"], optionalLayer: NORM_IN, optionalGlobal: ["output.weight"] },
  gemma3: { layer: [...LAYER_TENSORS, "attn_q_norm", "attn_k_norm", "post_attention_norm", "post_ffw_norm"], optionalLayer: NORM_IN, optionalGlobal: ["output.weight"] },
  minicpm: { layer: LAYER_TENSORS, optionalLayer: [], optionalGlobal: ["output.weight", "rope_factors_long.weight", "rope_factors_short.weight", "rope_freqs.weight"] },
};
const CHECKED_ARCHITECTURES = Object.keys(ARCH_TENSORS);

/** What llama.cpp's loader would refuse, or load into wrong output, for the architectures we write. */
export function checkModel(file: GgufFile): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  const error = (code: string, message: string, tensor?: string) => diagnostics.push({ severity: "error", code, message, ...(tensor === undefined ? {} : { tensor }) });
  const arch = file.scalar("general.architecture");
  if (typeof arch !== "string") {
    error("E_GGUF_MISSING_KEY", "general.architecture is missing or not a string: no runtime can load the file");
    return diagnostics;
  }
  if (!CHECKED_ARCHITECTURES.includes(arch)) {
    diagnostics.push({ severity: "info", code: "I_GGUF_ARCH_UNCHECKED", message: `architecture "${arch}": container checked; b158 does not check its model keys and tensors` });
    return diagnostics;
  }
  const integer = (key: string): number | undefined => {
    const v = file.metadata.get(`${arch}.${key}`);
    if (v === undefined || v.type === "array" || !/int/.test(v.type)) {
      error("E_GGUF_MISSING_KEY", `${arch}.${key} is ${v === undefined ? "missing" : `a ${v.type}, not an integer`}: llama.cpp refuses to load the model`);
      return undefined;
    }
    return Number(v.value);
  };
  const embedding = integer("embedding_length");
  const blocks = integer("block_count");
  integer("context_length");
  const ffn = integer("feed_forward_length");
  const heads = integer("attention.head_count");
  const eps = file.metadata.get(`${arch}.attention.layer_norm_rms_epsilon`);
  if (eps === undefined || eps.type !== "float32") error("E_GGUF_MISSING_KEY", `${arch}.attention.layer_norm_rms_epsilon is ${eps === undefined ? "missing" : `a ${eps.type}, not float32`}: llama.cpp refuses to load the model`);
  if (heads !== undefined && embedding !== undefined && heads > 0 && embedding % heads !== 0 && !file.metadata.has(`${arch}.attention.key_length`)) {
    error("E_GGUF_SHAPE", `${arch}.embedding_length ${embedding} is not a multiple of attention.head_count ${heads}`);
  }

  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  const parts = ARCH_TENSORS[arch]!;
  // Work and output follow the tensors the file holds, never block_count (a 300-byte file may claim 2^32 blocks).
  const layers = blocks === undefined ? new Map<number, GgufTensorInfo[]>() : layerTensors(file.tensors, blocks);
  const globals = ["token_embd.weight", "output_norm.weight"];
  for (const name of globals) if (!byName.has(name)) error("E_GGUF_MISSING_TENSOR", `tensor "${name}" is missing: llama.cpp fails with "missing tensor"`, name);
  if (blocks !== undefined) {
    for (const [layer, present] of layers) {
      for (const part of parts.layer) {
        const name = `blk.${layer}.${part}.weight`;
        if (!present.some((t) => t.name === name)) error("E_GGUF_MISSING_TENSOR", `tensor "${name}" is missing: llama.cpp fails with "missing tensor"`, name);
      }
    }
    for (const [first, last] of absentRanges([...layers.keys()], blocks)) {
      const name = `blk.${first}.${parts.layer[0]}.weight`;
      const which = first === last ? `block ${first}` : `blocks ${first}-${last}`;
      error("E_GGUF_MISSING_TENSOR", `${which} of ${arch}.block_count ${blocks} hold${first === last ? "s" : ""} none of their ${parts.layer.length} tensors (first missing: "${name}"): llama.cpp fails with "missing tensor"`, name);
    }
  }
  const isLayerTensor = (t: GgufTensorInfo): boolean => {
    const match = BLOCK_TENSOR.exec(t.name);
    return match !== null && blocks !== undefined && Number(match[1]) < blocks && (parts.layer.includes(match[2]!) || parts.optionalLayer.includes(match[2]!));
  };
  for (const t of file.tensors) {
    // optional per-linear scales (b3672+); bitnet.cpp's TL scales are in the tensors' own data, not tensors
    if (/\.scale$/.test(t.name) || globals.includes(t.name) || parts.optionalGlobal.includes(t.name) || isLayerTensor(t)) continue;
    error("E_GGUF_EXTRA_TENSOR", `tensor "${t.name}" is not part of arch ${arch}: llama.cpp fails with "wrong number of tensors"${t.name === "output.weight" ? " (this architecture ties the head to token_embd)" : ""}`, t.name);
  }

  const embd = byName.get("token_embd.weight");
  const tokens = file.metadata.get("tokenizer.ggml.tokens");
  if (tokens === undefined || tokens.type !== "array") error("E_GGUF_MISSING_KEY", "tokenizer.ggml.tokens is missing: llama.cpp cannot build the vocabulary");
  else if (embd !== undefined && embd.ne[1] !== tokens.value.length) {
    error("E_GGUF_SHAPE", `token_embd.weight has ${embd.ne[1]} rows but the vocabulary ${tokens.value.length} tokens`, "token_embd.weight");
  }
  if (embd !== undefined && embedding !== undefined && embd.ne[0] !== embedding) error("E_GGUF_SHAPE", `token_embd.weight rows are ${embd.ne[0]} long, embedding_length is ${embedding}`, "token_embd.weight");
  if (blocks !== undefined && embedding !== undefined && ffn !== undefined) {
    const wanted: Readonly<Record<string, readonly [number | undefined, number | undefined]>> = {
      ffn_gate: [embedding, ffn],
      ffn_up: [embedding, ffn],
      ffn_down: [ffn, embedding],
      attn_q: [embedding, undefined],
      attn_output: [undefined, embedding],
    };
    for (const present of layers.values()) {
      for (const t of present) {
        const ne = wanted[BLOCK_TENSOR.exec(t.name)![2]!];
        if (ne === undefined) continue;
        if ((ne[0] !== undefined && t.ne[0] !== ne[0]) || (ne[1] !== undefined && t.ne[1] !== ne[1])) {
          error("E_GGUF_SHAPE", `"${t.name}" is [${t.ne.join(", ")}], the hyperparameters say [${ne.map((n) => n ?? "*").join(", ")}]`, t.name);
        }
      }
    }
  }
  const quantized = file.tensors.some((t) => t.type.blockSize > 1 || t.type.bitnet !== undefined);
  if (quantized && file.scalar("general.quantization_version") === undefined) {
    diagnostics.push({ severity: "warning", code: "W_GGUF_QUANTIZATION_VERSION", message: "quantized tensors but no general.quantization_version (llama.cpp's writers always set 2)" });
  }
  return diagnostics;
}

/** `blk.<layer>.<part>.weight`, the layer in canonical decimal. */
const BLOCK_TENSOR = /^blk\.(0|[1-9]\d*)\.([a-z_]+)\.weight$/;

/** The file's block tensors by layer, for layers below `blocks`, in ascending layer order. */
function layerTensors(tensors: readonly GgufTensorInfo[], blocks: number): Map<number, GgufTensorInfo[]> {
  const byLayer = new Map<number, GgufTensorInfo[]>();
  for (const t of tensors) {
    const match = BLOCK_TENSOR.exec(t.name);
    if (match === null || Number(match[1]) >= blocks) continue;
    const layer = Number(match[1]);
    const list = byLayer.get(layer);
    if (list === undefined) byLayer.set(layer, [t]);
    else list.push(t);
  }
  return new Map([...byLayer].sort((a, b) => a[0] - b[0]));
}

/**
 * A data check per type, streamed in chunks of whole blocks so memory does not grow with the
 * tensor (a 128256 x 2560 embedding): NaN/Inf in floats and in block or tensor scales, codes
 * outside the ternary alphabet (docs/layouts.md): the 2-bit code 3 in TQ2_0 and I2_S, bytes TQ1_0
 * never writes, TL1 pair indices over 8; and the TL1/TL2 scale slots (a positive scale, zeros
 * around it). TL2 codes are not checked here: where its regions split depends on the tiling of the
 * bitnet.cpp build, which the file does not record. Q2_0's code 3 (+2 x d) is legal Q2_0, so only
 * its d is checked.
 */
async function scanTensor(file: GgufFile, t: GgufTensorInfo): Promise<{ code: string; message: string } | undefined> {
  const name = t.type.name;
  const blockScaled = name === "Q8_0" || name === "TQ1_0" || name === "TQ2_0" || name === "Q2_0";
  const float = name === "F32" || name === "F16" || name === "BF16";
  if (t.type.bitnet !== undefined) {
    // the f32 scale bitnet.cpp's kernels read after the codes (I2_S's 28 bytes after it are left uninitialised by llama-quantize)
    const { scale, nonZeroPadding } = await file.readBitnetScale(t.name);
    if (!Number.isFinite(scale)) return { code: "E_NONFINITE", message: `the tensor scale is ${scale}` };
    if (t.type.bitnet !== "i2_s") {
      if (!(scale > 0)) return { code: "E_SCALE_INVALID", message: `the tensor scale in the 32-byte slot after the codes is ${scale}, not positive` };
      if (nonZeroPadding > 0) return { code: "E_GGUF_PADDING", message: `${nonZeroPadding} nonzero bytes where bitnet.cpp writes zeros (the padding before the scale slot and the 28 bytes after the scale)` };
      if (t.type.bitnet === "tl2") return undefined;
    }
  } else if (!float && !blockScaled) return undefined;
  // I2_S and TL1: n/4 code bytes, then the 32-byte scale slot
  const codeBytes = t.type.bitnet !== undefined ? t.ne.reduce((a, b) => a * b, 1) / 4 : t.length;
  let nonFinite = 0;
  let invalid = 0;
  let firstInvalid = -1;
  const codes = (scan: CodeScan, offset: number): void => {
    if (scan.count > 0 && invalid === 0) firstInvalid = offset + scan.first;
    invalid += scan.count;
  };
  let position = 0;
  for await (const chunk of file.readTensorChunks(t.name)) {
    if (float) {
      nonFinite += countNonFinite(chunk, name.toLowerCase() as FloatLayout);
    } else if (blockScaled) {
      const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      // the f16 block scale: first in Q8_0 and Q2_0, last in TQ blocks
      const at = name === "Q8_0" || name === "Q2_0" ? 0 : t.type.typeSize - 2;
      for (let block = 0; block + t.type.typeSize <= chunk.length; block += t.type.typeSize) {
        if (!Number.isFinite(fromF16Bits(view.getUint16(block + at, true)))) nonFinite++;
      }
      if (name === "TQ2_0") codes(scanTq2_0(chunk), position);
      if (name === "TQ1_0") codes(scanTq1_0(chunk), position);
    } else {
      const inCodes = chunk.subarray(0, Math.max(0, Math.min(chunk.length, codeBytes - position)));
      codes(name === "TL1" ? scanTl1(inCodes) : scanCode3(inCodes), position);
    }
    position += chunk.length;
  }
  if (nonFinite > 0) return { code: "E_NONFINITE", message: blockScaled ? `${nonFinite} blocks with a NaN/Inf scale` : `${nonFinite} NaN/Inf values` };
  if (invalid === 0) return undefined;
  return { code: "E_PACKED_CODE", message: `${invalid} payload bytes hold codes outside the ternary alphabet, the first at byte ${firstInvalid} (docs/layouts.md, "Invalid codes")` };
}
