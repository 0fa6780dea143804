import type { Checkpoint } from "../checkpoint/open.js";
import { B158Error } from "../errors.js";
import { readTensorBytes, readTensorChunks } from "../formats/safetensors/read.js";
import { fromBf16Bits, fromF16Bits } from "../pack/float16.js";
import { countInvalidPackedCodes } from "../pack/hf-packed.js";
import { StoredTernaryReader } from "../pack/stored.js";
import type { Diagnostic } from "./diagnostics.js";
import type { PlanEntry, TensorPlan } from "./plan.js";

/**
 * validate's full data scan: streams every tensor once, in bounded chunks, and reports every
 * problem found with the tensor's name. Typed-array views over raw bits keep it at disk speed.
 */

export interface ScanProgress {
  readonly tensor: string;
  readonly doneBytes: number;
  readonly totalBytes: number;
  /** Set once the tensor is scanned: its place in the plan (1-based, of `of`), dtype, shape and bytes. */
  readonly scanned?: { readonly index: number; readonly of: number; readonly dtype: string; readonly shape: readonly number[]; readonly bytes: number };
}

export interface ScanResult {
  readonly diagnostics: readonly Diagnostic[];
  readonly tensorsScanned: number;
  readonly bytesScanned: number;
}

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new B158Error("E_INTERNAL", "b158 reads little-endian data through typed arrays and needs a little-endian host");
}

/** Per-tensor facts gathered from raw bits. */
interface FloatStats {
  nonFinite: number;
  firstNonFinite: number;
  allZero: boolean;
  constant: boolean;
  /** Bits of the first element with the sign of zero dropped, to compare the rest with. */
  firstBits: number | undefined;
  elements: number;
}

const FLOAT_BITS = {
  F32: { bytes: 4, exponentMask: 0x7f800000, magnitudeMask: 0x7fffffff },
  F16: { bytes: 2, exponentMask: 0x7c00, magnitudeMask: 0x7fff },
  BF16: { bytes: 2, exponentMask: 0x7f80, magnitudeMask: 0x7fff },
} as const;

export async function scanCheckpoint(checkpoint: Checkpoint, plan: TensorPlan, onProgress?: (progress: ScanProgress) => void): Promise<ScanResult> {
  const diagnostics: Diagnostic[] = [];
  const totalBytes = plan.entries.reduce((sum, e) => sum + checkpoint.tensorsByName.get(e.name)!.byteLength, 0);
  let doneBytes = 0;
  let tensorsScanned = 0;
  for (const [index, entry] of plan.entries.entries()) {
    const tensor = checkpoint.tensorsByName.get(entry.name)!;
    const source = await checkpoint.source(tensor.shard);
    if (entry.role === "scale") {
      const bytes = await readTensorBytes(source, tensor);
      checkScaleValues(entry, bytes, diagnostics);
    } else if (tensor.dtype === "U8" && entry.action === "repack") {
      let invalid = 0;
      let allZeroCodes = true;
      for await (const chunk of readTensorChunks(source, tensor)) {
        invalid += countInvalidPackedCodes(chunk);
        if (allZeroCodes) allZeroCodes = chunk.every((b) => b === 0x55);
        doneBytes += chunk.byteLength;
        onProgress?.({ tensor: entry.name, doneBytes, totalBytes });
      }
      if (invalid > 0) {
        diagnostics.push({ severity: "error", code: "E_PACKED_CODE", tensor: entry.name, message: `"${entry.name}": ${invalid} packed bytes hold the unused 2-bit code 3 (not a valid ternary packing)` });
      }
      if (allZeroCodes && tensor.byteLength > 0) {
        diagnostics.push({ severity: "error", code: "E_ALL_ZERO", tensor: entry.name, message: `"${entry.name}": every ternary weight is 0 (a degenerate checkpoint, like the broken 2B-4T re-upload)` });
      }
    } else if (tensor.dtype === "F32" || tensor.dtype === "F16" || tensor.dtype === "BF16" || tensor.dtype === "F64") {
      const stats: FloatStats = { nonFinite: 0, firstNonFinite: -1, allZero: true, constant: true, firstBits: undefined, elements: 0 };
      // stored (fake-quantized) weights must be exactly ternary x scale: convert reads them that way
      let stored = entry.action === "extract" && tensor.dtype !== "F64" ? new StoredTernaryReader(tensor.dtype, entry.shape as [number, number], entry.name) : undefined;
      for await (const chunk of readTensorChunks(source, tensor)) {
        if (tensor.dtype === "F64") scanF64(chunk, stats);
        else scanFloatBits(chunk, FLOAT_BITS[tensor.dtype], stats);
        if (stored !== undefined && stats.nonFinite === 0) stored = feedStored(stored, chunk, entry, diagnostics);
        doneBytes += chunk.byteLength;
        onProgress?.({ tensor: entry.name, doneBytes, totalBytes });
      }
      reportFloatStats(entry, stats, diagnostics);
    } else {
      doneBytes += tensor.byteLength;
      continue;
    }
    tensorsScanned++;
    onProgress?.({ tensor: entry.name, doneBytes, totalBytes, scanned: { index: index + 1, of: plan.entries.length, dtype: tensor.dtype, shape: tensor.shape, bytes: tensor.byteLength } });
  }
  return { diagnostics, tensorsScanned, bytesScanned: doneBytes };
}

/** One chunk through a stored-weights reader; a tensor that is not ternary x scale is reported once and read no further. */
function feedStored(reader: StoredTernaryReader, chunk: Uint8Array, entry: PlanEntry, diagnostics: Diagnostic[]): StoredTernaryReader | undefined {
  try {
    // the codes are not kept: a chunk-sized scratch takes them
    reader.encode(chunk, new Int8Array(chunk.byteLength / (reader.dtype === "F32" ? 4 : 2)), 0);
    return reader;
  } catch (error) {
    if (!(error instanceof B158Error) || error.code !== "E_STORED_NOT_TERNARY") throw error;
    diagnostics.push({ severity: "error", code: error.code, tensor: entry.name, message: error.message });
    return undefined;
  }
}

/** NaN/Inf count of one buffer of little-endian F32/F16/BF16 values (for checks outside a checkpoint scan). */
export function countNonFinite(bytes: Uint8Array, dtype: "F32" | "F16" | "BF16"): number {
  const stats: FloatStats = { nonFinite: 0, firstNonFinite: -1, allZero: true, constant: true, firstBits: undefined, elements: 0 };
  scanFloatBits(bytes, FLOAT_BITS[dtype], stats);
  return stats.nonFinite;
}

function view<T extends Uint16Array | Uint32Array>(chunk: Uint8Array, Kind: { new (buffer: ArrayBufferLike, offset: number, length: number): T; BYTES_PER_ELEMENT: number }): T {
  const n = Math.floor(chunk.byteLength / Kind.BYTES_PER_ELEMENT);
  const aligned = chunk.byteOffset % Kind.BYTES_PER_ELEMENT === 0 ? chunk : chunk.slice();
  return new Kind(aligned.buffer, aligned.byteOffset, n);
}

function scanFloatBits(chunk: Uint8Array, format: (typeof FLOAT_BITS)[keyof typeof FLOAT_BITS], stats: FloatStats): void {
  const words = format.bytes === 4 ? view(chunk, Uint32Array) : view(chunk, Uint16Array);
  const { exponentMask, magnitudeMask } = format;
  let nonFinite = 0;
  let allZero = stats.allZero;
  let constant = stats.constant;
  let first = stats.firstBits;
  const start = stats.elements;
  for (let i = 0; i < words.length; i++) {
    const bits = words[i]!;
    const magnitude = bits & magnitudeMask;
    if ((bits & exponentMask) === exponentMask) {
      if (nonFinite === 0 && stats.nonFinite === 0) stats.firstNonFinite = start + i;
      nonFinite++;
    }
    if (magnitude !== 0) allZero = false;
    const normalized = magnitude === 0 ? 0 : bits;
    if (first === undefined) first = normalized;
    else if (normalized !== first) constant = false;
  }
  stats.nonFinite += nonFinite;
  stats.allZero = allZero;
  stats.constant = constant;
  stats.firstBits = first;
  stats.elements += words.length;
}

function scanF64(chunk: Uint8Array, stats: FloatStats): void {
  const aligned = chunk.byteOffset % 8 === 0 ? chunk : chunk.slice();
  const values = new Float64Array(aligned.buffer, aligned.byteOffset, Math.floor(aligned.byteLength / 8));
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) {
      if (stats.nonFinite === 0) stats.firstNonFinite = stats.elements + i;
      stats.nonFinite++;
    }
    if (v !== 0) stats.allZero = false;
    const bits = v === 0 ? 0 : v;
    if (stats.firstBits === undefined) stats.firstBits = bits;
    else if (bits !== stats.firstBits && !(Number.isNaN(bits) && Number.isNaN(stats.firstBits))) stats.constant = false;
  }
  stats.elements += values.length;
}

function reportFloatStats(entry: PlanEntry, stats: FloatStats, diagnostics: Diagnostic[]): void {
  const name = entry.name;
  if (stats.nonFinite > 0) {
    diagnostics.push({
      severity: "error",
      code: "E_NONFINITE",
      tensor: name,
      message: `"${name}": ${stats.nonFinite} NaN/Inf values (first at flat index ${stats.firstNonFinite})`,
    });
  }
  if (stats.elements < 2 || /\.bias$/.test(name)) return;
  const matrix = entry.shape.length >= 2;
  if (stats.allZero) {
    diagnostics.push({ severity: "error", code: "E_ALL_ZERO", tensor: name, message: `"${name}": all ${stats.elements} values are 0` });
  } else if (stats.constant && stats.nonFinite === 0) {
    diagnostics.push({
      severity: matrix ? "error" : "warning",
      code: matrix ? "E_CONSTANT" : "W_CONSTANT",
      tensor: name,
      message: `"${name}": all ${stats.elements} values are equal${matrix ? " (a weight matrix cannot be constant)" : " (an untrained norm?)"}`,
    });
  }
}

function checkScaleValues(entry: PlanEntry, bytes: Uint8Array, diagnostics: Diagnostic[]): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const values: number[] = [];
  if (entry.dtype === "F32") for (let i = 0; i + 4 <= bytes.byteLength; i += 4) values.push(view.getFloat32(i, true));
  else if (entry.dtype === "F64") for (let i = 0; i + 8 <= bytes.byteLength; i += 8) values.push(view.getFloat64(i, true));
  else if (entry.dtype === "BF16") for (let i = 0; i + 2 <= bytes.byteLength; i += 2) values.push(fromBf16Bits(view.getUint16(i, true)));
  else if (entry.dtype === "F16") for (let i = 0; i + 2 <= bytes.byteLength; i += 2) values.push(fromF16Bits(view.getUint16(i, true)));
  else return; // a non-float scale is reported by the plan
  const bad = values.filter((v) => !Number.isFinite(v) || v <= 0);
  if (bad.length > 0) {
    diagnostics.push({
      severity: "error",
      code: "E_SCALE_INVALID",
      tensor: entry.name,
      message: `"${entry.name}" = ${bad.map(String).join(", ")}: a weight_scale must be finite and positive`,
    });
  }
}
