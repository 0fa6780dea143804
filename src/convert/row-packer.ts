import { B158Error } from "../errors.js";
import { packLayout, unpackLayout, type Unpacked } from "../pack/codec.js";
import { fromF16Bits } from "../pack/float16.js";
import { I2_S_TAIL_BYTES, Q2_0_BLOCK, Q2_0_BLOCK_BYTES, tl1TilingProblem, tl2PayloadBytes, tl2RegionBytes, tl2TilingProblem, TQ1_0_BLOCK_BYTES, TQ2_0_BLOCK_BYTES, TQ_BLOCK, type LayoutParams } from "../pack/layouts.js";
import { scaleBitsOf } from "../pack/tq.js";
import type { CheckFlags, Tl2Regions, WasmKernels } from "../pack/wasm/kernels.js";
import type { PackedCheck } from "./validate-b158.js";

/**
 * Packing and decode-checking a tensor a range of rows at a time, while its codes are still in
 * cache, so a tensor's codes never exist whole. Every layout's payload is made of row ranges:
 * I2_S, TQ and Q2_0 blocks lie within a row (I2_S's run over the flattened rows, and K is a
 * multiple of the block), so a range's bytes are a slice of the payload; TL1 and TL2 tile BM rows
 * at a time, and their tile order puts a BM-row group's bytes in one slice (TL1) or one slice of
 * each of its three regions (TL2). Packing ranges with the layout's own packer therefore gives the
 * bytes of packing the tensor at once (row-packer.spec.ts). I2_S's tail (the f32 scale) and TL2's
 * zero padding are written once. With WebAssembly kernels and views in their memory, every layout
 * packs and checks in WebAssembly (TL2 into its three regions' slices at once), with the same
 * bytes and the same check.
 */

/** Rows a layout packs on its own: TL1/TL2 tile BM rows at once, the others any rows. */
export function rowUnit(params: LayoutParams): number {
  return params.layout === "tl1" || params.layout === "tl2" ? params.BM : 1;
}

/** Rows per range for about `codes` codes a range, a multiple of the layout's unit. */
export function rangeRows(params: LayoutParams, K: number, codes: number): number {
  const unit = rowUnit(params);
  return Math.max(1, Math.floor(codes / (K * unit))) * unit;
}

/** Where a range of rows' packed bytes go in the whole payload: [from in the range's bytes, to in the payload, length]. */
function rangeSlices(params: LayoutParams, shape: readonly [number, number], row: number, rows: number): [number, number, number][] {
  const [M, K] = shape;
  if (params.layout === "tl2") {
    const [a, s, b] = tl2RegionBytes(rows, K, params);
    const [before, beforeS, beforeB] = tl2RegionBytes(row, K, params);
    const [wholeA, wholeS] = tl2RegionBytes(M, K, params);
    return [
      [0, before, a],
      [a, wholeA + beforeS, s],
      [a + s, wholeA + wholeS + beforeB, b],
    ];
  }
  const rowBytes = rowBytesOf(params, K);
  return [[0, row * rowBytes, rows * rowBytes]];
}

function rowBytesOf(params: LayoutParams, K: number): number {
  switch (params.layout) {
    case "i2_s":
    case "tl1":
    case "tl2": // not used for TL2, which is three regions (rangeSlices)
      return K / 4;
    case "q2_0":
      return (K / Q2_0_BLOCK) * Q2_0_BLOCK_BYTES;
    case "tq1_0":
      return (K / TQ_BLOCK) * TQ1_0_BLOCK_BYTES;
    case "tq2_0":
      return (K / TQ_BLOCK) * TQ2_0_BLOCK_BYTES;
  }
}

/** The layout's whole payload bytes for `shape` (what packLayout returns). */
export function payloadBytesOf(params: LayoutParams, shape: readonly [number, number]): number {
  if (params.layout === "tl2") return tl2PayloadBytes(shape[0], shape[1]);
  return rowsEnd(params, shape) + (params.layout === "i2_s" ? I2_S_TAIL_BYTES : 0);
}

/** The payload's bytes after the rows': I2_S's tail, TL2's zero padding (none for the others). */
function rowsEnd(params: LayoutParams, shape: readonly [number, number]): number {
  const [M, K] = shape;
  if (params.layout === "tl2") return tl2RegionBytes(M, K, params).reduce((sum, bytes) => sum + bytes, 0);
  return M * rowBytesOf(params, K);
}

export class RangePacker {
  private rowsDone = 0;
  private nonzero = false;
  private roundTrips = true;
  private embeddedScale: number | undefined;
  /** TQ1_0 / TQ2_0 / Q2_0's d of a nonzero block, for the WebAssembly packer; undefined: pack in TypeScript (which raises the scale's error, if any). */
  private readonly d: number | undefined;

  /**
   * `payload`: exactly the layout's payload bytes for `shape` (any contents: every byte is written).
   * `scratch`: room for a range's codes, which the TypeScript decode-check decodes into.
   */
  constructor(
    private readonly params: LayoutParams,
    private readonly shape: readonly [number, number],
    readonly scale: number,
    readonly payload: Uint8Array,
    private readonly scratch: Int8Array,
    private readonly kernels?: WasmKernels,
  ) {
    const [M, K] = shape;
    const end = rowsEnd(params, shape);
    payload.fill(0, end);
    if (params.layout === "i2_s") new DataView(payload.buffer, payload.byteOffset + M * (K / 4), 4).setFloat32(0, scale, true);
    this.d = params.layout === "tq2_0" || params.layout === "tq1_0" || params.layout === "q2_0" ? tryScaleBits(scale, params.layout) : undefined;
  }

  /** Packs and checks the next `codes.length / K` rows (whole units of the layout's, or the last rows). */
  packRows(codes: Int8Array): void {
    const [M, K] = this.shape;
    const rows = codes.length / K;
    const row = this.rowsDone;
    if (!Number.isInteger(rows) || rows <= 0 || row + rows > M || (row + rows < M && rows % rowUnit(this.params) !== 0)) {
      throw new B158Error("E_INTERNAL", `a range of ${codes.length} codes does not fit rows ${row}.. of [${M}, ${K}]`);
    }
    if (!this.packInWasm(codes, row, rows)) this.packInTypeScript(codes, row, rows);
    this.rowsDone += rows;
  }

  /** The payload and its check; every row must have been packed. */
  finish(): { payload: Uint8Array; check: PackedCheck } {
    if (this.rowsDone !== this.shape[0]) throw new B158Error("E_INTERNAL", `${this.rowsDone} of ${this.shape[0]} rows were packed`);
    return { payload: this.payload, check: { nonzero: this.nonzero, roundTrips: this.roundTrips, embeddedScale: this.embeddedScale } };
  }

  private packInTypeScript(codes: Int8Array, row: number, rows: number): void {
    const K = this.shape[1];
    const packed = packLayout(this.params, codes, [rows, K], this.scale);
    for (const [from, to, length] of rangeSlices(this.params, this.shape, row, rows)) this.payload.set(packed.subarray(from, from + length), to);
    const decoded = decodeWritten(this.params, packed, [rows, K], this.scratch.subarray(0, rows * K));
    this.record(decoded !== undefined && sameBytes(decoded.codes, codes), anyNonzero(codes), () => decoded?.scale);
  }

  /**
   * Packed and checked in WebAssembly when the views lie in the kernels' memory; false when not
   * done (nothing written): TQ / Q2_0 with a scale the packer refuses, or a TL tiling that does not
   * fit, are left to the TypeScript packer, which raises their errors.
   */
  private packInWasm(codes: Int8Array, row: number, rows: number): boolean {
    const { kernels, params } = this;
    if (kernels === undefined || !kernels.holds(codes, this.payload)) return false;
    const K = this.shape[1];
    const regions = rangeSlices(params, this.shape, row, rows).map(([, to, length]) => this.payload.subarray(to, to + length));
    const out = regions[0]!;
    let ternary: boolean;
    let flags: CheckFlags;
    switch (params.layout) {
      case "i2_s":
        ternary = kernels.packI2s(codes, params.blockSize, out);
        flags = kernels.checkI2s(out, codes, params.blockSize);
        break;
      case "tq2_0":
        if (this.d === undefined) return false;
        ternary = kernels.packTq2_0(codes, this.d, out);
        flags = kernels.checkTq2_0(out, codes);
        break;
      case "tq1_0":
        if (this.d === undefined) return false;
        ternary = kernels.packTq1_0(codes, this.d, out);
        flags = kernels.checkTq1_0(out, codes);
        break;
      case "q2_0":
        if (this.d === undefined) return false;
        ternary = kernels.packQ2_0(codes, this.d, out);
        flags = kernels.checkQ2_0(out, codes);
        break;
      case "tl1":
        if (tl1TilingProblem(rows, K, params) !== undefined) return false;
        ternary = kernels.packTl1(codes, K, params, out);
        flags = kernels.checkTl1(out, codes, K, params);
        break;
      case "tl2": {
        if (tl2TilingProblem(rows, K, params) !== undefined) return false;
        const [magnitudes, signs, tail] = regions;
        const tl2: Tl2Regions = [magnitudes!, signs!, tail!];
        ternary = kernels.packTl2(codes, K, params, tl2);
        flags = kernels.checkTl2(tl2, codes, K, params);
        break;
      }
    }
    // codes outside -1..1: the TypeScript packer raises E_NOT_TERNARY naming the first
    if (!ternary) packLayout(params, codes, [rows, K], this.scale);
    const { invalid, differs, nonzero } = flags;
    this.record(!invalid && !differs, nonzero, () => (invalid ? undefined : this.embeddedIn(out)));
    return true;
  }

  /**
   * The scale a decoder reads from a range just packed in WebAssembly: I2_S's tail, TQ's / Q2_0's
   * d of the first nonzero block (0 if none); none for TL1/TL2, whose scale is not in the payload.
   */
  private embeddedIn(out: Uint8Array): number | undefined {
    const { params, payload } = this;
    if (params.layout === "tl1" || params.layout === "tl2") return undefined;
    if (params.layout === "i2_s") return new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getFloat32(payload.byteLength - I2_S_TAIL_BYTES, true);
    const [blockBytes, at] = params.layout === "tq2_0" ? [TQ2_0_BLOCK_BYTES, TQ2_0_BLOCK_BYTES - 2] : params.layout === "tq1_0" ? [TQ1_0_BLOCK_BYTES, TQ1_0_BLOCK_BYTES - 2] : [Q2_0_BLOCK_BYTES, 0];
    for (let o = at; o < out.byteLength; o += blockBytes) {
      const bits = out[o]! | (out[o + 1]! << 8);
      if (bits !== 0) return fromF16Bits(bits);
    }
    return 0;
  }

  private record(roundTrips: boolean, nonzero: boolean, scale: () => number | undefined): void {
    this.roundTrips &&= roundTrips;
    this.nonzero ||= nonzero;
    // the whole tensor's embedded scale: I2_S's tail, TQ's / Q2_0's d of the first block that has one
    if (this.embeddedScale === undefined || this.embeddedScale === 0) this.embeddedScale = scale();
  }
}

/** f16 bits of a per-tensor TQ / Q2_0 scale, or undefined when the packer would refuse it (then it packs, and raises the error, itself). */
function tryScaleBits(scale: number, layout: "tq2_0" | "tq1_0" | "q2_0"): number | undefined {
  try {
    return scaleBitsOf(scale, layout === "q2_0" ? "Q2_0" : "TQ")(0);
  } catch {
    return undefined;
  }
}

/** Stops at the first nonzero word: real weights answer at once, an all-zero tensor costs one pass. */
export function anyNonzero(codes: Int8Array): boolean {
  const whole = codes.byteOffset % 4 === 0 ? codes.length >>> 2 : 0;
  const words = whole > 0 ? new Uint32Array(codes.buffer, codes.byteOffset, whole) : new Uint32Array(0);
  for (let i = 0; i < whole; i++) if (words[i] !== 0) return true;
  for (let i = 4 * whole; i < codes.length; i++) if (codes[i] !== 0) return true;
  return false;
}

export function sameBytes(a: Int8Array, b: Int8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/**
 * Decodes what a packer just wrote, to compare with the codes packed; undefined when the payload
 * holds a code outside the alphabet, which is then the packer's failure to round-trip
 * (E_DECODE_MISMATCH), not a damaged input (E_PACKED_CODE).
 */
export function decodeWritten(params: LayoutParams, payload: Uint8Array, shape: readonly [number, number], scratch?: Int8Array): Unpacked | undefined {
  try {
    return unpackLayout(params, payload, shape, scratch);
  } catch (error) {
    if (error instanceof B158Error && error.code === "E_PACKED_CODE") return undefined;
    throw error;
  }
}
