import type { ByteSource } from "../io/byte-source.js";
import { packLayout, scalesError } from "../pack/codec.js";
import { scaleEligibility, type LayoutParams } from "../pack/layouts.js";
import { unpackHfPacked } from "../pack/hf-packed.js";
import type { TensorScale } from "../pack/scales.js";
import { StoredTernaryReader } from "../pack/stored.js";
import { AbsmeanAccumulator, type LatentDtype } from "../pack/ternarize.js";
import { dequantize, type FloatLayout } from "./float-convert.js";
import { anyNonzero, decodeWritten, packsByRows, RowPacker, sameBytes } from "./row-packer.js";
import { Lease, Scratch } from "./scratch.js";
import type { PackedCheck } from "./validate-b158.js";

/**
 * One ternary tensor's conversion: read it from its weights file by position, ternarize (two
 * streaming passes, online semantics), read it as stored (one pass, stored semantics) or unpack,
 * then pack into its layout or, for an ineligible shape with a
 * fallback, dequantize to float. Pure apart from the reads, so it runs the same in a worker
 * thread or inline, and the output never depends on which. A packed payload is decoded here, while
 * its codes are at hand, so validating the written file needs only hashes (validate-b158.ts).
 * I2_S and TQ are packed and decoded a few rows at a time as pass 2 makes the codes (row-packer.ts),
 * and large buffers are reused from task to task (scratch.ts): both keep the work in cache.
 */
export interface TernaryTask {
  readonly name: string;
  /** Path of the weights file (workers open it themselves). */
  readonly path: string;
  readonly fileOffset: number;
  readonly byteLength: number;
  readonly sourceDtype: string;
  /** [out, in] of the weight (unpacked for packed sources). */
  readonly shape: readonly [number, number];
  readonly action: "ternarize" | "repack" | "extract";
  /** repack: the packed [rows, cols] and the per-tensor scale already derived from weight_scale. */
  readonly packedShape?: readonly [number, number];
  readonly repackScale?: number;
  readonly encoding: { readonly kind: "layout"; readonly params: LayoutParams } | { readonly kind: "fallback"; readonly dtype: FloatLayout };
  /** Bytes per read; bounds memory on top of the codes and the payload. */
  readonly chunkBytes: number;
}

export interface TernaryResult {
  readonly payload: Uint8Array;
  /** One value, or per group (stored weights only). */
  readonly scale: TensorScale;
  /** Layout payloads: what decoding the packed bytes gave (fallback floats have none). */
  readonly check?: PackedCheck;
}

/** This thread's reusable buffers (see scratch.ts). */
const scratch = new Scratch();

export async function runTernaryTask(task: TernaryTask, source: ByteSource): Promise<TernaryResult> {
  const lease = new Lease(scratch);
  try {
    if (task.action === "repack") return await repackTensor(task, source, lease);
    return task.action === "extract" ? await extractTensor(task, source, lease) : await ternarizeTensor(task, source, lease);
  } finally {
    lease.release();
  }
}

async function repackTensor(task: TernaryTask, source: ByteSource, lease: Lease): Promise<TernaryResult> {
  const bytes = await source.read(task.fileOffset, task.byteLength, lease.bytes(task.byteLength));
  const [rows, cols] = task.packedShape!;
  const codes = unpackHfPacked(bytes, rows, cols, task.shape[0], task.name, task.path);
  const scale = task.repackScale!;
  const packer = rowPacker(task, scale, lease);
  packer?.feed(codes, codes.length);
  return finish(task, codes, scale, packer, lease);
}

/** The payload: from the row packer when its scale held, else packed (and checked) whole. */
function finish(task: TernaryTask, codes: Int8Array, scale: TensorScale, packer: RowPacker | undefined, lease: Lease): TernaryResult {
  if (task.encoding.kind === "fallback") return { payload: dequantize(codes, scale, task.encoding.dtype, task.shape[1]), scale };
  if (packer !== undefined && packer.scale === scale) return { ...packer.finish(), scale };
  const { params } = task.encoding;
  const payload = packLayout(params, codes, task.shape, scale);
  return { payload, scale, check: checkPacked(params, payload, codes, task.shape, lease.codes(codes.length)) };
}

function rowPacker(task: TernaryTask, scale: number, lease: Lease): RowPacker | undefined {
  if (task.encoding.kind !== "layout" || !packsByRows(task.encoding.params)) return undefined;
  return new RowPacker(task.encoding.params, task.shape, scale, lease.codes(RowPacker.rangeCodes(task.shape[1])));
}

/** Bytes read at a time within a chunk: small enough to be processed while still in this core's cache. */
const PIECE_BYTES = 1024 * 1024;

/**
 * The two absmean passes over the latent weights, each reading the tensor in pieces on this thread
 * (cache-warm), with pass 1's chunk boundaries kept: its float sum depends on them, and so would
 * the output. Pass 2 packs and checks rows as their codes are made, with the absmean scale known
 * after pass 1 (online semantics: it is the final scale, whatever the values).
 */
async function ternarizeTensor(task: TernaryTask, source: ByteSource, lease: Lease): Promise<TernaryResult> {
  const dtype = task.sourceDtype as LatentDtype;
  const elementBytes = dtype === "F32" ? 4 : 2;
  const step = Math.max(elementBytes, Math.floor(task.chunkBytes / 4) * 4);
  const buffer = lease.bytes(Math.min(step, PIECE_BYTES, task.byteLength));
  const accumulator = new AbsmeanAccumulator(dtype, task.name);
  for (const { offset, length, last } of pieces(task.byteLength, step, buffer.byteLength)) {
    accumulator.addPiece(await readPiece(source, task.fileOffset + offset, length, buffer), last);
  }
  const coder = accumulator.coder();
  const codes = lease.codes(task.shape[0] * task.shape[1]);
  const packer = rowPacker(task, coder.provisionalScale, lease);
  let written = 0;
  for (const { offset, length } of pieces(task.byteLength, step, buffer.byteLength)) {
    written += coder.encode(await readPiece(source, task.fileOffset + offset, length, buffer), codes, written);
    packer?.feed(codes, written);
  }
  return finish(task, codes, coder.result().scale, packer, lease);
}

/**
 * Stored weights (already exactly t x s): one pass reads the codes and finds the scale granularity
 * (stored.ts), never re-quantizing. Scales the planned layout cannot hold exactly are an error
 * naming the tensor and the layouts that can: never averaged.
 */
async function extractTensor(task: TernaryTask, source: ByteSource, lease: Lease): Promise<TernaryResult> {
  const reader = new StoredTernaryReader(task.sourceDtype as LatentDtype, task.shape, task.name);
  const elementBytes = task.sourceDtype === "F32" ? 4 : 2;
  const step = Math.max(elementBytes, Math.floor(task.chunkBytes / 4) * 4);
  const buffer = lease.bytes(Math.min(step, PIECE_BYTES, task.byteLength));
  const codes = lease.codes(task.shape[0] * task.shape[1]);
  let written = 0;
  for (const { offset, length } of pieces(task.byteLength, step, buffer.byteLength)) {
    written += reader.encode(await readPiece(source, task.fileOffset + offset, length, buffer), codes, written);
  }
  const scale = reader.result();
  if (typeof scale !== "number" && task.encoding.kind === "layout") {
    const { layout } = task.encoding.params;
    const problem = scaleEligibility(layout, task.shape[1], scale.groupSize);
    if (problem !== undefined && !problem.eligible) throw scalesError(task.name, task.shape, layout, scale.groupSize, problem.reason, problem.rule);
  }
  return finish(task, codes, scale, undefined, lease);
}

/** Pieces of at most `size` bytes (a multiple of 16) that never straddle a `step` chunk; `last` ends a chunk. */
function* pieces(total: number, step: number, size: number): Generator<{ offset: number; length: number; last: boolean }> {
  const piece = size >= step ? step : Math.max(16, size - (size % 16));
  for (let chunk = 0; chunk < total; chunk += step) {
    const end = Math.min(total, chunk + step);
    for (let offset = chunk; offset < end; offset += piece) yield { offset, length: Math.min(piece, end - offset), last: offset + piece >= end };
  }
}

function readPiece(source: ByteSource, offset: number, length: number, into: Uint8Array): Uint8Array | Promise<Uint8Array> {
  return source.readSync !== undefined ? source.readSync(offset, length, into) : source.read(offset, length, into);
}

/** Decodes `payload` with the layout's own unpacker (into `scratch` where it takes one) and compares with the codes that were packed. */
export function checkPacked(params: LayoutParams, payload: Uint8Array, codes: Int8Array, shape: readonly [number, number], scratch?: Int8Array): PackedCheck {
  const decoded = decodeWritten(params, payload, shape, scratch);
  return { nonzero: anyNonzero(codes), roundTrips: decoded !== undefined && sameBytes(decoded.codes, codes), embeddedScale: decoded?.scale };
}
