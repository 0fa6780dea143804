import type { ByteSource } from "../io/byte-source.js";
import { packLayout, scalesError } from "../pack/codec.js";
import { scaleEligibility, type LayoutParams } from "../pack/layouts.js";
import { checkHfShape, unpackHfPacked, unpackHfRows } from "../pack/hf-packed.js";
import type { TensorScale } from "../pack/scales.js";
import { StoredTernaryReader } from "../pack/stored.js";
import { AbsmeanAccumulator, type LatentDtype, type TernaryCoder } from "../pack/ternarize.js";
import { dequantize, type FloatLayout } from "./float-convert.js";
import { returnArena, takeArena, type Arena } from "../pack/wasm/kernels.js";
import { anyNonzero, decodeWritten, payloadBytesOf, RangePacker, rangeRows, sameBytes } from "./row-packer.js";
import { Lease, Scratch } from "./scratch.js";
import type { PackedCheck } from "./validate-b158.js";

/**
 * One ternary tensor's conversion: read it from its weights file by position, ternarize (two
 * streaming passes, online semantics), read it as stored (one pass, stored semantics) or unpack,
 * then pack into its layout or, for an ineligible shape with a
 * fallback, dequantize to float. Pure apart from the reads, so it runs the same in a worker
 * thread or inline, and the output never depends on which. A packed payload is decoded here, while
 * its codes are at hand, so validating the written file needs only hashes (validate-b158.ts).
 * Layout payloads are packed and decoded a range of rows at a time as pass 2 (or the unpacking of a
 * packed source) makes the codes (row-packer.ts), so a tensor's codes never exist whole, in an
 * arena reused from task to task (src/pack/wasm/kernels.ts) whose memory the WebAssembly kernels
 * work in: both keep the work in cache and the memory bounded by the payload.
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

/** This thread's reusable buffers for whole-codes paths (see scratch.ts). */
const scratch = new Scratch();

/**
 * `arena`: where layout payloads are made; the payload returned is then a view of it, valid until
 * its next carve. Without one, the task takes this thread's and returns a copy.
 */
export async function runTernaryTask(task: TernaryTask, source: ByteSource, arena?: Arena, limits: TaskLimits = TASK_LIMITS): Promise<TernaryResult> {
  const own = arena === undefined ? takeArena() : undefined;
  const lease = new Lease(scratch);
  try {
    const result = await runWith(task, source, lease, arena ?? own!, limits);
    return own === undefined || task.encoding.kind === "fallback" ? result : { ...result, payload: result.payload.slice() };
  } finally {
    lease.release();
    if (own !== undefined) returnArena(own);
  }
}

function runWith(task: TernaryTask, source: ByteSource, lease: Lease, arena: Arena, limits: TaskLimits): Promise<TernaryResult> {
  if (task.action === "extract") return extractTensor(task, source, lease);
  if (task.encoding.kind === "layout") return task.action === "repack" ? repackByRanges(task, task.encoding.params, source, arena, limits) : ternarizeByRanges(task, task.encoding.params, source, arena, limits);
  return task.action === "repack" ? repackTensor(task, source, lease) : ternarizeTensor(task, source, lease);
}

export interface TaskLimits {
  /** About this many codes per range: codes, packed bytes and decoded codes stay in a core's L2. */
  readonly rangeCodes: number;
  /** Bytes read at a time within a chunk: small enough to be processed while still in this core's cache. */
  readonly pieceBytes: number;
}

/** The converter's (tests pass small ones, to cross many range and piece boundaries). */
export const TASK_LIMITS: TaskLimits = { rangeCodes: 128 * 1024, pieceBytes: 1024 * 1024 };

/** A fallback encoding's repack: the whole codes, dequantized. */
async function repackTensor(task: TernaryTask, source: ByteSource, lease: Lease): Promise<TernaryResult> {
  const bytes = await source.read(task.fileOffset, task.byteLength, lease.bytes(task.byteLength));
  const [rows, cols] = task.packedShape!;
  const codes = unpackHfPacked(bytes, rows, cols, task.shape[0], task.name, task.path);
  return finish(task, codes, task.repackScale!, lease);
}

/** A packed source into a layout: unpacked and packed a range of rows at a time. */
async function repackByRanges(task: TernaryTask, params: LayoutParams, source: ByteSource, arena: Arena, limits: TaskLimits): Promise<TernaryResult> {
  const [packedRows, cols] = task.packedShape!;
  const [M, K] = task.shape;
  checkHfShape(task.byteLength, packedRows, cols, M, task.name);
  const rows = rangeRows(params, K, limits.rangeCodes);
  const [into, codeBytes, payload, decoded] = arena.carve(task.byteLength, Math.min(M, rows) * K, payloadBytesOf(params, task.shape), Math.min(M, rows) * K);
  const bytes = await source.read(task.fileOffset, task.byteLength, into!);
  const codes = int8(codeBytes!);
  const packer = new RangePacker(params, task.shape, task.repackScale!, payload!, int8(decoded!), arena.kernels);
  for (let row = 0; row < M; row += rows) {
    const range = codes.subarray(0, Math.min(rows, M - row) * K);
    // a code 3: the whole tensor's unpacking names the first
    if (!unpackHfRows(bytes, packedRows, cols, row, range, arena.kernels)) unpackHfPacked(bytes, packedRows, cols, M, task.name, task.path);
    packer.packRows(range);
  }
  return { ...packer.finish(), scale: task.repackScale! };
}

/** Whole codes into their encoding: a fallback's floats, or a layout packed and checked at once. */
function finish(task: TernaryTask, codes: Int8Array, scale: TensorScale, lease: Lease): TernaryResult {
  if (task.encoding.kind === "fallback") return { payload: dequantize(codes, scale, task.encoding.dtype, task.shape[1]), scale };
  const { params } = task.encoding;
  const payload = packLayout(params, codes, task.shape, scale);
  return { payload, scale, check: checkPacked(params, payload, codes, task.shape, lease.codes(codes.length)) };
}

function int8(bytes: Uint8Array): Int8Array {
  return new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}


/**
 * The two absmean passes over the latent weights, each reading the tensor in pieces on this thread
 * (cache-warm), with pass 1's chunk boundaries kept: its float sum depends on them, and so would
 * the output. Pass 2 packs and checks rows as their codes are made, with the absmean scale known
 * after pass 1 (online semantics: it is the final scale, whatever the values).
 */
async function ternarizeTensor(task: TernaryTask, source: ByteSource, lease: Lease): Promise<TernaryResult> {
  const { step, pieceBytes } = pieceSizes(task, TASK_LIMITS);
  const buffer = lease.bytes(pieceBytes);
  const coder = await absmeanPass(task, source, step, buffer);
  const codes = lease.codes(task.shape[0] * task.shape[1]);
  let written = 0;
  for (const { offset, length } of pieces(task.byteLength, step, buffer.byteLength)) {
    written += coder.encode(await readPiece(source, task.fileOffset + offset, length, buffer), codes, written);
  }
  return finish(task, codes, coder.result().scale, lease);
}

/** The same into a layout, its rows packed and checked a range at a time as pass 2 codes them. */
async function ternarizeByRanges(task: TernaryTask, params: LayoutParams, source: ByteSource, arena: Arena, limits: TaskLimits): Promise<TernaryResult> {
  const [M, K] = task.shape;
  const { step, pieceBytes, elementBytes } = pieceSizes(task, limits);
  const rangeCodes = Math.min(M, rangeRows(params, K, limits.rangeCodes)) * K;
  // a piece's bytes, the codes of a range not yet whole and a piece's, the payload, a range decoded
  const [raw, codeBytes, payload, decoded] = arena.carve(pieceBytes, rangeCodes + Math.ceil(pieceBytes / elementBytes), payloadBytesOf(params, task.shape), rangeCodes);
  const coder = await absmeanPass(task, source, step, raw!, arena);
  const codes = int8(codeBytes!);
  const packer = new RangePacker(params, task.shape, coder.result().scale, payload!, int8(decoded!), arena.kernels);
  let filled = 0;
  for (const { offset, length } of pieces(task.byteLength, step, pieceBytes)) {
    const piece = await readInto(source, task.fileOffset + offset, raw!.subarray(0, length));
    filled += coder.encode(piece, codes, filled);
    let start = 0;
    for (; filled - start >= rangeCodes; start += rangeCodes) packer.packRows(codes.subarray(start, start + rangeCodes));
    if (start > 0) codes.copyWithin(0, start, filled);
    filled -= start;
  }
  if (filled > 0) packer.packRows(codes.subarray(0, filled));
  return { ...packer.finish(), scale: coder.result().scale };
}

function pieceSizes(task: TernaryTask, limits: TaskLimits): { step: number; pieceBytes: number; elementBytes: number } {
  const elementBytes = task.sourceDtype === "F32" ? 4 : 2;
  const step = Math.max(elementBytes, Math.floor(task.chunkBytes / 4) * 4);
  return { step, pieceBytes: Math.min(step, limits.pieceBytes, task.byteLength), elementBytes };
}

/** Pass 1 (the absmean), each piece read into `buffer` (a piece's size); the coder for pass 2. */
async function absmeanPass(task: TernaryTask, source: ByteSource, step: number, buffer: Uint8Array, arena?: Arena): Promise<TernaryCoder> {
  const accumulator = new AbsmeanAccumulator(task.sourceDtype as LatentDtype, task.name, arena?.kernels);
  for (const { offset, length, last } of pieces(task.byteLength, step, buffer.byteLength)) {
    accumulator.addPiece(await readInto(source, task.fileOffset + offset, buffer.subarray(0, length)), last);
  }
  return accumulator.coder(arena?.kernels);
}

/** Reads `into.byteLength` bytes at `offset` into `into` (copied there when the source hands back other memory). */
async function readInto(source: ByteSource, offset: number, into: Uint8Array): Promise<Uint8Array> {
  const bytes = await readPiece(source, offset, into.byteLength, into);
  if (bytes.buffer !== into.buffer || bytes.byteOffset !== into.byteOffset) into.set(bytes);
  return into;
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
  const buffer = lease.bytes(Math.min(step, TASK_LIMITS.pieceBytes, task.byteLength));
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
  return finish(task, codes, scale, lease);
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
