import { B158Error } from "../errors.js";
import { packLayout, unpackLayout, type Unpacked } from "../pack/codec.js";
import { I2_S_TAIL_BYTES, Q2_0_BLOCK, Q2_0_BLOCK_BYTES, TQ1_0_BLOCK_BYTES, TQ2_0_BLOCK_BYTES, TQ_BLOCK, type LayoutParams } from "../pack/layouts.js";
import type { PackedCheck } from "./validate-b158.js";

/**
 * Packing and decode-checking a tensor a few rows at a time, while its codes are still in cache.
 * For I2_S, TQ and Q2_0 the payload of a row range is a slice of the whole payload (I2_S blocks run
 * over the flattened rows and K is a multiple of the block; TQ and Q2_0 blocks lie within a row), so packing row
 * ranges with the layout's own packer gives the same bytes as packing the tensor at once. I2_S's
 * tail (the f32 scale) is taken from the last range. TL1/TL2 tile across rows: they pack whole.
 */
export function packsByRows(params: LayoutParams): boolean {
  return params.layout === "i2_s" || params.layout === "tq1_0" || params.layout === "tq2_0" || params.layout === "q2_0";
}

/** About this many codes per range: codes, packed bytes and decoded codes stay in a core's L2. */
const RANGE_CODES = 128 * 1024;

export class RowPacker {
  readonly payload: Uint8Array;
  private readonly rowBytes: number;
  private readonly rangeRows: number;
  private rowsDone = 0;
  private nonzero = false;
  private roundTrips = true;
  private embeddedScale: number | undefined;

  /** `scratch`: room to decode one range into (rangeCodes codes). */
  constructor(
    private readonly params: LayoutParams,
    private readonly shape: readonly [number, number],
    readonly scale: number,
    private readonly scratch: Int8Array,
  ) {
    const [M, K] = shape;
    this.rowBytes =
      params.layout === "i2_s" ? K / 4 : params.layout === "q2_0" ? (K / Q2_0_BLOCK) * Q2_0_BLOCK_BYTES : (K / TQ_BLOCK) * (params.layout === "tq2_0" ? TQ2_0_BLOCK_BYTES : TQ1_0_BLOCK_BYTES);
    this.rangeRows = Math.max(1, Math.floor(RANGE_CODES / K));
    this.payload = new Uint8Array(M * this.rowBytes + (params.layout === "i2_s" ? I2_S_TAIL_BYTES : 0));
  }

  /** Codes a range of rows decodes into. */
  static rangeCodes(K: number): number {
    return Math.max(1, Math.floor(RANGE_CODES / K)) * K;
  }

  /** Packs and checks every whole range of rows among the first `available` codes (all rows once `available` is M x K). */
  feed(codes: Int8Array, available: number): void {
    const [M, K] = this.shape;
    while (this.rowsDone < M) {
      const end = Math.min(M, this.rowsDone + this.rangeRows);
      if (end * K > available) return;
      this.packRange(codes.subarray(this.rowsDone * K, end * K), this.rowsDone, end - this.rowsDone);
      this.rowsDone = end;
    }
  }

  /** The payload and its check; every row must have been fed. */
  finish(): { payload: Uint8Array; check: PackedCheck } {
    return { payload: this.payload, check: { nonzero: this.nonzero, roundTrips: this.roundTrips, embeddedScale: this.embeddedScale } };
  }

  private packRange(codes: Int8Array, row: number, rows: number): void {
    const K = this.shape[1];
    const packed = packLayout(this.params, codes, [rows, K], this.scale);
    const body = rows * this.rowBytes;
    this.payload.set(packed.subarray(0, body), row * this.rowBytes);
    if (row + rows === this.shape[0] && this.params.layout === "i2_s") this.payload.set(packed.subarray(body), this.payload.byteLength - I2_S_TAIL_BYTES);
    const decoded = decodeWritten(this.params, packed, [rows, K], this.scratch.subarray(0, rows * K));
    this.roundTrips &&= decoded !== undefined && sameBytes(decoded.codes, codes);
    this.nonzero ||= anyNonzero(codes);
    // the whole tensor's embedded scale: I2_S's tail, TQ's / Q2_0's d of the first block that has one
    if (this.embeddedScale === undefined || this.embeddedScale === 0) this.embeddedScale = decoded?.scale;
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
