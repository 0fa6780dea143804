import { B158Error, interruptedError } from "../errors.js";
import type { B158File, B158Tensor } from "../formats/b158/read.js";
import { plainToFloat32 } from "../formats/b158/read.js";
import { PLAIN_LAYOUT_BYTES, type PlainLayout } from "../formats/b158/spec.js";
import { openGgufFile } from "../formats/gguf/read.js";
import { BITNET_SCALE_SLOT_BYTES, bitnetScaleSlot, ggmlType, type GgmlType, type GgufKv, type GgufRuntime } from "../formats/gguf/spec.js";
import { ACTIVATION_QUANTIZATION_KEY, TARGET_KEY, targetFileType, type GgufTargetId } from "../formats/gguf/targets.js";
import { GgufWriter, type GgufTensorSpec } from "../formats/gguf/write.js";
import { prepareOutput } from "../io/atomic-file.js";
import type { Diagnostic } from "../model/diagnostics.js";
import { packLayout } from "../pack/codec.js";
import { bf16BitsToF16Bits, float32ToF16Bits, fromF16Bits, toBf16Bits, toF16Bits } from "../pack/float16.js";
import { SCALE_BLOCK, type LayoutId } from "../pack/layouts.js";
import { applyScale, permuteScaleRows } from "../pack/scales.js";
import { quantizeQ8_0 } from "../pack/q8_0.js";
import { ggufCompat, type GgufCompat } from "../report/gguf-compat.js";
import { tokenizerMetadata } from "./gguf-tokenizer.js";
import { archMetadata, chooseTarget, embeddingMetadata, longRope, POOLING_TYPE, type GgufTarget } from "./gguf-target.js";
import { poolingFromFiles } from "../runtime/pooling.js";

/**
 * .b158 -> GGUF, from the .b158 alone (it carries config.json and the tokenizer files). Ternary
 * payloads are already in the bytes the GGUF types hold (TQ1_0/TQ2_0 blocks with d = f16(scale),
 * I2_S with its f32 tail; TL1/TL2 codes get the 32-byte scale slot bitnet.cpp reads after them), so they are copied,
 * except Q/K rows of Llama-architecture models, which llama.cpp's NORM rope wants interleaved per
 * head: those are decoded, permuted and packed again. Float tensors stream in row chunks.
 * docs/gguf.md lists every key and tensor written.
 */
export type EmbeddingType = "f16" | "q8_0" | "f32" | "bf16";
/** "packed" keeps the .b158's ternary layout; f32/f16 write the same ternary weights as floats (reference files). */
export type WeightType = "packed" | "f32" | "f16";

export interface GgufExportOptions {
  readonly output: string;
  readonly force?: boolean;
  /** Token embedding and output head (default f16; a ternary one keeps its ternary type unless this is given). */
  readonly embeddings?: EmbeddingType;
  readonly weights?: WeightType;
  /** The runtime whose type ids the file uses (default: by the weight type, docs/gguf.md). */
  readonly target?: GgufTargetId;
  readonly signal?: AbortSignal;
  /** Runs on the complete, checked file (at its temporary path) before it is published; a throw leaves nothing behind. */
  readonly beforePublish?: (writtenPath: string) => Promise<void>;
  /** After each tensor is written. */
  readonly onProgress?: (progress: GgufExportProgress) => void;
}

export interface GgufExportProgress {
  /** The GGUF tensor name, and the .b158 tensor and layout it was written from. */
  readonly tensor: string;
  readonly from: string;
  readonly fromLayout: string;
  /** torch order ([out, in]), as the .b158 and inspect show shapes. */
  readonly shape: readonly number[];
  /** The GGUF type written (TQ2_0, I2_S, F16, Q8_0...). */
  readonly type: string;
  readonly bytes: number;
  readonly done: number;
  readonly total: number;
  readonly bytesWritten: number;
  readonly bytesTotal: number;
}

export interface GgufExportSummary {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
  readonly architecture: string;
  readonly target: GgufTargetId;
  readonly runtime: GgufRuntime;
  /** The runtimes that can load the file, in words. */
  readonly loadableBy: string;
  readonly fileType: number;
  readonly tensors: number;
  readonly types: Readonly<Record<string, number>>;
  readonly diagnostics: readonly Diagnostic[];
}

const ROW_CHUNK_BYTES = 8 * 1024 * 1024;

interface PlannedGgufTensor {
  readonly spec: GgufTensorSpec;
  readonly write: () => Promise<Uint8Array | AsyncIterable<Uint8Array>>;
  /** The .b158 tensor it is written from (progress reports name it). */
  readonly from?: B158Tensor;
}

export async function exportGguf(b158: B158File, options: GgufExportOptions): Promise<GgufExportSummary> {
  const outputNotes = await prepareOutput(options.output, options.force ?? false);
  const header = b158.header;
  const layout = header.provenance.options.layout;
  const weights = options.weights ?? "packed";
  const embeddings = options.embeddings ?? "f16";
  const ternaryHeads = options.embeddings === undefined && weights === "packed";
  const weightType = weights === "packed" ? TERNARY_TYPE[layout] : weights.toUpperCase();
  const target = chooseTarget(b158, weightType, options.target);
  const diagnostics: Diagnostic[] = [...outputNotes];
  const embedding = b158.tensors.find((t) => t.role === "embedding");
  // a non-empty embedding bounds the vocabulary (the tokenizer table) by the bytes the file holds
  if (embedding === undefined || embedding.shape.length !== 2 || !(embedding.shape[0]! > 0 && embedding.shape[1]! > 0)) throw exportError(b158, "has no non-empty 2-D token embedding");
  const tokenizer = tokenizerMetadata({
    files: header.files,
    config: header.model.config,
    vocabSize: embedding.shape[0]!,
    ...(header.provenance.source.repo === undefined ? {} : { repo: header.provenance.source.repo }),
    ...(target.embedding ? { embedding: target.architecture as "qwen3" | "gemma3" } : {}),
  });
  diagnostics.push(...tokenizer.diagnostics);

  const planned: PlannedGgufTensor[] = [...extraTensors(b158, target)];
  // the embedding converter writes tensors in the order safetensors lists them: names sorted as strings
  const tensors = target.embedding ? [...b158.tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) : b158.tensors;
  for (const t of tensors) {
    const name = t.gguf_name;
    if (name === null) {
      diagnostics.push({ severity: "warning", code: "W_GGUF_SKIPPED", tensor: t.name, message: `"${t.name}" has no GGUF counterpart and was left out` });
      continue;
    }
    if (name === "output.weight" && target.tiedOutput) {
      if (target.embedding) continue; // the embedding converter skips lm_head (the head is token_embd), without a word
      diagnostics.push({ severity: "info", code: "I_GGUF_TIED_OUTPUT", tensor: t.name, message: `arch ${target.architecture} ties the output head to token_embd; "${t.name}" was left out` });
      continue;
    }
    planned.push(...planTensor(b158, t, name, target, weights, embeddings, ternaryHeads).map((p) => ({ ...p, from: t })));
  }
  const fileType = targetFileType(target.id, weightType);
  const quantized = planned.some((p) => p.spec.type.blockSize > 1 || p.spec.type.bitnet !== undefined);
  // b158's own keys (llama.cpp ignores keys it does not know): which table the type ids follow, and
  // whether the linears quantize their input (BitNet) or not (a fake-quantized model's plain nn.Linear)
  const b158Keys: GgufKv[] = [
    { key: TARGET_KEY, value: { type: "string", value: target.id } },
    { key: ACTIVATION_QUANTIZATION_KEY, value: { type: "string", value: header.model.family === "fake-quantized" ? "none" : "int8-per-token" } },
  ];
  const general: GgufKv[] = [
    { key: "general.architecture", value: { type: "string", value: target.architecture } },
    { key: "general.name", value: { type: "string", value: modelName(b158) } },
    // where the weights came from (docs/gguf.md); `b158 push` turns it into the card's base_model
    ...(header.provenance.source.repo === undefined ? [] : [{ key: "general.source.repo_url", value: { type: "string", value: `https://huggingface.co/${header.provenance.source.repo}` } } as GgufKv]),
  ];
  if (target.embedding && target.architecture === "gemma3") diagnostics.push(...gemmaWindowWarning(b158));
  const metadata: GgufKv[] = target.embedding
    ? [...general, ...embeddingMetadata(b158, target, fileType, poolingType(b158, diagnostics), embedding.shape[0]!), ...tokenizer.kvs, ...b158Keys]
    : [
        ...general,
        { key: "general.file_type", value: { type: "uint32", value: fileType } },
        ...(quantized ? [{ key: "general.quantization_version", value: { type: "uint32", value: 2 } } as GgufKv] : []),
        ...b158Keys,
        ...archMetadata(b158, target, embedding.shape[0]!),
        ...tokenizer.kvs,
      ];

  const writer = await GgufWriter.create(options.output, metadata, planned.map((p) => p.spec), { force: options.force ?? false });
  let finished: Awaited<ReturnType<GgufWriter["finish"]>>;
  let compat: GgufCompat;
  try {
    const lengths = writer.layout.lengths;
    const bytesTotal = lengths.reduce((a, b) => a + b, 0);
    let bytesWritten = 0;
    for (const [i, p] of planned.entries()) {
      if (options.signal?.aborted) throw interruptedError(options.output, "export", options.signal);
      await writer.writeTensor(await p.write());
      bytesWritten += lengths[i]!;
      options.onProgress?.({ tensor: p.spec.name, from: p.from?.name ?? p.spec.name, fromLayout: p.from?.layout ?? "", shape: [...p.spec.ne].reverse(), type: p.spec.type.name, bytes: lengths[i]!, done: i + 1, total: planned.length, bytesWritten, bytesTotal });
    }
    finished = await writer.finish();
    // the strict reader checks the temp file: one it cannot read never reaches the output path
    const check = await openGgufFile(finished.tempPath);
    try {
      compat = ggufCompat(check);
    } finally {
      await check.close();
    }
    // which runtimes load the file, and which of them compute the wrong FFN activation for it
    diagnostics.push(...compat.diagnostics.filter((d) => d.severity !== "info"));
    await options.beforePublish?.(finished.tempPath);
    await writer.publish();
  } catch (error) {
    await writer.abort();
    throw error;
  }
  const types: Record<string, number> = {};
  for (const p of planned) types[p.spec.type.name] = (types[p.spec.type.name] ?? 0) + 1;
  return {
    path: options.output,
    size: finished.size,
    sha256: finished.sha256,
    architecture: target.architecture,
    target: target.id,
    runtime: target.runtime,
    loadableBy: compat.loadableBy,
    fileType,
    tensors: planned.length,
    types,
    diagnostics,
  };
}

/**
 * An embedding model's pooling_type, as the embedding converter reads it (modules.json's Pooling
 * module's config.json: mean 1, cls 2, lasttoken 3). Without those files the converter writes mean;
 * b158 writes last token, the BitNet-embedding models' pooling, and says so.
 */
function poolingType(b158: B158File, diagnostics: Diagnostic[]): number {
  const text = (name: string) => (b158.header.files[name] === undefined ? undefined : new TextDecoder().decode(b158.header.files[name]));
  if (text("modules.json") === undefined) {
    diagnostics.push({
      severity: "warning",
      code: "W_GGUF_POOLING_ASSUMED",
      message: "no modules.json / Pooling config in the model: wrote pooling_type 3 (last token, the BitNet-embedding models' pooling); bitnet.cpp's embedding converter would write 1 (mean) here",
    });
  }
  const pooling = poolingFromFiles(text, b158.name, true);
  return POOLING_TYPE[pooling?.mode ?? "last"];
}

/**
 * bitnet.cpp's embedding converter writes neither Gemma3's sliding window nor its local rope base:
 * a runtime reading the file attends globally in every layer, with rope_theta everywhere. That is
 * Gemma3's function only for inputs within the window and when both rope bases are equal; b158
 * writes what the converter writes, and says so.
 */
function gemmaWindowWarning(b158: B158File): Diagnostic[] {
  const c = b158.header.model.config ?? {};
  const window = typeof c.sliding_window === "number" ? c.sliding_window : undefined;
  if (window === undefined) return [];
  const theta = typeof c.rope_theta === "number" ? c.rope_theta : 1000000;
  const local = typeof c.rope_local_base_freq === "number" ? c.rope_local_base_freq : 10000;
  const bases = local === theta ? "" : ` and rotate its sliding layers with rope base ${theta} instead of ${local}`;
  return [
    {
      severity: "warning",
      code: "W_GGUF_GEMMA3_WINDOW",
      message: `bitnet.cpp's embedding converter writes no gemma3.attention.sliding_window nor local rope base, and neither does b158: runtimes reading this file attend over every position in every layer (not the last ${window})${bases}, which computes Gemma3's function only ${bases === "" ? `for inputs of at most ${window} tokens` : "when the rope bases agree"}`,
    },
  ];
}

/** Tensors a GGUF architecture needs beyond the .b158's: minicpm's LongRoPE factors (F32, head_dim / 2 each), first, as llama.cpp's converter writes them. */
function extraTensors(b158: B158File, target: GgufTarget): PlannedGgufTensor[] {
  if (target.architecture !== "minicpm") return [];
  const factors = longRope(b158);
  if (factors === undefined) return [];
  const type = ggmlType(target.id, "F32");
  return [
    { spec: { name: "rope_factors_long.weight", ne: [factors.long.length], type }, write: async () => floatBytes(Float32Array.from(factors.long), "f32") },
    { spec: { name: "rope_factors_short.weight", ne: [factors.short.length], type }, write: async () => floatBytes(Float32Array.from(factors.short), "f32") },
  ];
}

function exportError(b158: B158File, message: string, hint?: string): B158Error {
  return new B158Error("E_GGUF_EXPORT", `${b158.name}: ${message}`, { details: { file: b158.name }, ...(hint === undefined ? {} : { hint }) });
}

/** The repo name when the .b158 came from the Hub, else the architecture: never a local path. */
function modelName(b158: B158File): string {
  const repo = b158.header.provenance.source.repo;
  if (repo !== undefined) return repo.split("/").at(-1)!;
  return b158.header.model.architecture ?? b158.header.model.family;
}

/** ggml dims: reversed torch shape (ne[0] is the row length). */
const neOf = (shape: readonly number[]) => [...shape].reverse();

/**
 * `ternaryHeads`: a ternary embedding / lm_head (a ternary source's, .b158 1.1) keeps its packed
 * type, as llama.cpp's TQ and Q2_0 types can hold it; else it is written as `embeddings` floats.
 */
function planTensor(b158: B158File, t: B158Tensor, name: string, target: GgufTarget, weights: WeightType, embeddings: EmbeddingType, ternaryHeads: boolean): PlannedGgufTensor[] {
  const runtime = target.id;
  const permuteHeads = target.permuteHeads(name);
  const ne = neOf(t.shape);
  if (t.layoutParams !== undefined) {
    const [M, K] = t.shape as [number, number];
    const effective = async () => {
      const { codes, scale } = await b158.decodeTernary(t.name);
      return permuted(applyScale(codes, K, typeof scale === "number" ? embeddedScale(t) : scale), M, K, permuteHeads);
    };
    if (weights !== "packed") {
      const type = ggmlType(runtime, weights === "f32" ? "F32" : "F16");
      return [{ spec: { name, ne, type }, write: async () => floatBytes(await effective(), weights) }];
    }
    if (t.role !== "ternary-linear" && !(ternaryHeads && runtime === "llama.cpp")) {
      const type = ggmlType(runtime, embeddings === "q8_0" ? (K % 32 === 0 ? "Q8_0" : "F16") : embeddings.toUpperCase());
      return [{ spec: { name, ne, type }, write: async () => encodeRows(await effective(), type) }];
    }
    const type = ggmlType(runtime, TERNARY_TYPE[t.layoutParams.layout]);
    const payload = async () => {
      if (permuteHeads === undefined) return b158.readPayload(t.name);
      const { codes, scale } = await b158.decodeTernary(t.name);
      return packLayout(t.layoutParams!, permuteRows(codes, M, K, permuteHeads), [M, K], permuteScaleRows(scale, K, headOrder(M, permuteHeads)));
    };
    if (type.bitnet !== "tl1" && type.bitnet !== "tl2") return [{ spec: { name, ne, type }, write: payload }];
    // TL kernels read the f32 scale from a 32-byte slot after the codes (padded to 32), which bitnet.cpp's ggml_nbytes counts
    return [{ spec: { name, ne, type }, write: async () => withScaleSlot(type, ne, await payload(), t.scale!) }];
  }
  const plain = t.layout as PlainLayout;
  if (t.shape.length <= 1 || t.role === "norm") {
    if (target.embedding) {
      // the embedding converter: every norm F16; Gemma3's own norms as w + 1 (its RMSNorm's 1 + w), never BitLinear's *_norm_in
      const offset = target.architecture === "gemma3" && /_norm\.weight$/.test(name) ? 1 : 0;
      return [{ spec: { name, ne, type: ggmlType(runtime, "F16") }, write: async () => floatBytes(plainToFloat32(plain, await b158.readPayload(t.name)).map((w) => Math.fround(w + offset)), "f16") }];
    }
    return [{ spec: { name, ne, type: ggmlType(runtime, "F32") }, write: async () => floatBytes(plainToFloat32(plain, await b158.readPayload(t.name)), "f32") }];
  }
  const [M, K] = [t.shape[0]!, t.shape.slice(1).reduce((a, b) => a * b, 1)];
  const isHead = t.role === "embedding" || t.role === "lm-head";
  const kind: EmbeddingType = isHead ? embeddings : plain === "f32" ? "f32" : "f16";
  const typeName = kind === "q8_0" ? (K % 32 === 0 ? "Q8_0" : "F16") : kind.toUpperCase();
  const type = ggmlType(runtime, typeName);
  if (permuteHeads !== undefined) {
    // a fallback (unpacked) Q/K weight: small enough to permute whole
    return [{ spec: { name, ne, type }, write: async () => encodeRows(permuted(plainToFloat32(plain, await b158.readPayload(t.name)), M, K, permuteHeads), type) }];
  }
  return [{ spec: { name, ne, type }, write: async () => streamRows(b158, t, plain, K, type) }];
}

/** The ggml type each layout's payload is, by name: the target's table gives the id. */
export const TERNARY_TYPE: Readonly<Record<LayoutId, string>> = { tq1_0: "TQ1_0", tq2_0: "TQ2_0", q2_0: "Q2_0", i2_s: "I2_S", tl1: "TL1", tl2: "TL2" };

/** TL codes, zeros up to 32, the f32 scale, 28 zeros: the bytes bitnet.cpp's converter writes and its ggml_nbytes counts. */
function withScaleSlot(type: GgmlType, ne: readonly number[], codes: Uint8Array, scale: number): Uint8Array {
  const { codeBytes, scaleOffset } = bitnetScaleSlot(type, ne);
  if (codes.byteLength !== codeBytes) throw new B158Error("E_INTERNAL", `${type.name} payload is ${codes.byteLength} bytes, ${codeBytes} expected`);
  const out = new Uint8Array(scaleOffset + BITNET_SCALE_SLOT_BYTES);
  out.set(codes);
  new DataView(out.buffer).setFloat32(scaleOffset, scale, true);
  return out;
}

/** The per-tensor scale a runtime multiplies by: what the payload itself stores (f16 for TQ / Q2_0 blocks, f32 otherwise). */
function embeddedScale(t: B158Tensor): number {
  return SCALE_BLOCK[t.layoutParams!.layout] !== undefined ? fromF16Bits(toF16Bits(t.scale!)) : Math.fround(t.scale!);
}

/** permuteRows' row order: order[to] = from. */
function headOrder(M: number, heads: number): number[] {
  const headDim = M / heads;
  const half = headDim / 2;
  const order = new Array<number>(M);
  for (let h = 0; h < heads; h++) for (let j = 0; j < 2; j++) for (let i = 0; i < half; i++) order[h * headDim + 2 * i + j] = h * headDim + j * half + i;
  return order;
}

/**
 * llama.cpp's NORM rope rotates adjacent pairs; HF's rotate_half rotates the two halves of each
 * head. Per head, row (half j, index i) moves to 2i + j: convert_hf_to_gguf's permute().
 */
function permuteRows<T extends Int8Array | Float32Array>(rows: T, M: number, K: number, heads: number): T {
  const headDim = M / heads;
  const half = headDim / 2;
  const out = new (rows.constructor as new (n: number) => T)(rows.length);
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < 2; j++) {
      for (let i = 0; i < half; i++) {
        const from = (h * headDim + j * half + i) * K;
        const to = (h * headDim + 2 * i + j) * K;
        out.set(rows.subarray(from, from + K), to);
      }
    }
  }
  return out;
}

function permuted<T extends Int8Array | Float32Array>(rows: T, M: number, K: number, heads: number | undefined): T {
  return heads === undefined ? rows : permuteRows(rows, M, K, heads);
}

function floatBytes(values: Float32Array, kind: "f32" | "f16" | "bf16"): Uint8Array {
  if (kind === "f32") return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  if (kind === "f16") return new Uint8Array(float32ToF16Bits(values).buffer);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = toBf16Bits(values[i]!);
  return new Uint8Array(out.buffer);
}

function encodeRows(values: Float32Array, type: GgmlType): Uint8Array {
  return type.name === "Q8_0" ? quantizeQ8_0(values) : floatBytes(values, type.name.toLowerCase() as "f32" | "f16" | "bf16");
}

/** Streams a large plain tensor (a 128256 x 2560 embedding) in whole-row chunks. */
async function* streamRows(b158: B158File, t: B158Tensor, plain: PlainLayout, K: number, type: GgmlType): AsyncGenerator<Uint8Array> {
  const rowBytes = K * PLAIN_LAYOUT_BYTES[plain];
  // readPayloadChunks rounds chunk sizes down to 8 bytes: 8 rows keep chunks whole rows
  const rowsPerChunk = Math.max(8, Math.floor(ROW_CHUNK_BYTES / rowBytes / 8) * 8);
  const target = type.name.toLowerCase();
  for await (const chunk of b158.readPayloadChunks(t.name, rowsPerChunk * rowBytes)) {
    if (target === plain) yield chunk;
    else if (plain === "bf16" && target === "f16") yield new Uint8Array(bf16BitsToF16Bits(halfView(chunk)).buffer);
    else yield encodeRows(plainToFloat32(plain, chunk), type);
  }
}

function halfView(bytes: Uint8Array): Uint16Array {
  const aligned = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice();
  return new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2);
}
