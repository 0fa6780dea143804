import { B158Error } from "../errors.js";
import { checkCodes, checkPayload, assertTernary } from "./check.js";
import { fromF16Bits, toF16Bits } from "./float16.js";
import { TQ1_0_BLOCK_BYTES, TQ2_0_BLOCK_BYTES, TQ_BLOCK } from "./layouts.js";

/**
 * llama.cpp TQ2_0 and TQ1_0 (ggml-common.h block_tq2_0 / block_tq1_0; reference
 * gguf-tq-and-hf-checkpoints.md §1): 256-element blocks along each row, codes q = t + 1, and the
 * f16 scale d last. d = f16(scale) for a block with any nonzero and 0 for an all-zero block, which
 * is what llama.cpp's absmax quantizer writes for ternary x scale input, so the bytes match its own.
 * `scale` is per tensor, or per block (an array with one entry per 256 elements).
 */
export type BlockScales = number | ArrayLike<number>;

function blockScale(scales: BlockScales, block: number): number {
  return typeof scales === "number" ? scales : scales[block]!;
}

function checkScales(scales: BlockScales, blocks: number): void {
  if (typeof scales !== "number" && scales.length !== blocks) {
    throw new B158Error("E_INTERNAL", `TQ packing got ${scales.length} block scales for ${blocks} blocks`);
  }
}

function checkShape(M: number, K: number, layout: string): void {
  if (K % TQ_BLOCK !== 0) {
    throw new B158Error("E_LAYOUT_SHAPE", `${layout} needs K % 256 == 0; K = ${K} is not`, { details: { layout, M, K, rule: "K % 256 == 0" } });
  }
}

/** True when codes[start, start + 256) holds a nonzero. */
function blockHasNonzero(codes: Int8Array, start: number): boolean {
  for (let i = start; i < start + TQ_BLOCK; i++) if (codes[i] !== 0) return true;
  return false;
}

export function packTq2_0(codes: Int8Array, M: number, K: number, scales: BlockScales): Uint8Array {
  checkShape(M, K, "tq2_0");
  checkCodes(codes, M, K, "tq2_0");
  assertTernary(codes, K);
  const blocks = (M * K) / TQ_BLOCK;
  checkScales(scales, blocks);
  const out = new Uint8Array(blocks * TQ2_0_BLOCK_BYTES);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const e = b * TQ_BLOCK;
    const o = b * TQ2_0_BLOCK_BYTES;
    // byte 32j + m holds elements 128j + 32n + m at bits 2n
    for (let j = 0; j < 2; j++) {
      const src = e + 128 * j;
      const dst = o + 32 * j;
      for (let m = 0; m < 32; m++) {
        const i = src + m;
        out[dst + m] = (codes[i]! + 1) | ((codes[i + 32]! + 1) << 2) | ((codes[i + 64]! + 1) << 4) | ((codes[i + 96]! + 1) << 6);
      }
    }
    view.setUint16(o + 64, blockHasNonzero(codes, e) ? toF16Bits(blockScale(scales, b)) : 0, true);
  }
  return out;
}

export function unpackTq2_0(bytes: Uint8Array, M: number, K: number): { codes: Int8Array; scales: Float32Array } {
  checkShape(M, K, "tq2_0");
  const blocks = (M * K) / TQ_BLOCK;
  checkPayload(bytes, blocks * TQ2_0_BLOCK_BYTES, "tq2_0", M, K);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const codes = new Int8Array(M * K);
  const scales = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const e = b * TQ_BLOCK;
    const o = b * TQ2_0_BLOCK_BYTES;
    for (let j = 0; j < 2; j++) {
      for (let m = 0; m < 32; m++) {
        const byte = bytes[o + 32 * j + m]!;
        const i = e + 128 * j + m;
        codes[i] = (byte & 3) - 1;
        codes[i + 32] = ((byte >>> 2) & 3) - 1;
        codes[i + 64] = ((byte >>> 4) & 3) - 1;
        codes[i + 96] = ((byte >>> 6) & 3) - 1;
      }
    }
    scales[b] = fromF16Bits(view.getUint16(o + 64, true));
  }
  return { codes, scales };
}

/** 5 trits (0..242) to the fixed-point byte ceil(v * 256 / 243). */
const TRITS_TO_BYTE = Uint8Array.from({ length: 243 }, (_, v) => Math.floor((v * 256 + 242) / 243));
const POW3 = [1, 3, 9, 27, 81] as const;

export function packTq1_0(codes: Int8Array, M: number, K: number, scales: BlockScales): Uint8Array {
  checkShape(M, K, "tq1_0");
  checkCodes(codes, M, K, "tq1_0");
  assertTernary(codes, K);
  const blocks = (M * K) / TQ_BLOCK;
  checkScales(scales, blocks);
  const out = new Uint8Array(blocks * TQ1_0_BLOCK_BYTES);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const e = b * TQ_BLOCK;
    const o = b * TQ1_0_BLOCK_BYTES;
    // qs[m], m < 32: elements m + 32n (n = 0..4), first the most significant digit
    for (let m = 0; m < 32; m++) {
      const i = e + m;
      out[o + m] = TRITS_TO_BYTE[81 * (codes[i]! + 1) + 27 * (codes[i + 32]! + 1) + 9 * (codes[i + 64]! + 1) + 3 * (codes[i + 96]! + 1) + (codes[i + 128]! + 1)]!;
    }
    // qs[32 + m], m < 16: elements 160 + m + 16n
    for (let m = 0; m < 16; m++) {
      const i = e + 160 + m;
      out[o + 32 + m] = TRITS_TO_BYTE[81 * (codes[i]! + 1) + 27 * (codes[i + 16]! + 1) + 9 * (codes[i + 32]! + 1) + 3 * (codes[i + 48]! + 1) + (codes[i + 64]! + 1)]!;
    }
    // qh[j], j < 4: elements 240 + j + 4n (n = 0..3), the fifth digit 0
    for (let j = 0; j < 4; j++) {
      const i = e + 240 + j;
      out[o + 48 + j] = TRITS_TO_BYTE[81 * (codes[i]! + 1) + 27 * (codes[i + 4]! + 1) + 9 * (codes[i + 8]! + 1) + 3 * (codes[i + 12]! + 1)]!;
    }
    view.setUint16(o + 52, blockHasNonzero(codes, e) ? toF16Bits(blockScale(scales, b)) : 0, true);
  }
  return out;
}

/** Digit n (0 = most significant) of a TQ1_0 byte, as ggml decodes it: ((b * 3^n mod 256) * 3) >> 8. */
function digit(byte: number, n: number): number {
  return (((byte * POW3[n]!) & 0xff) * 3) >>> 8;
}

export function unpackTq1_0(bytes: Uint8Array, M: number, K: number): { codes: Int8Array; scales: Float32Array } {
  checkShape(M, K, "tq1_0");
  const blocks = (M * K) / TQ_BLOCK;
  checkPayload(bytes, blocks * TQ1_0_BLOCK_BYTES, "tq1_0", M, K);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const codes = new Int8Array(M * K);
  const scales = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const e = b * TQ_BLOCK;
    const o = b * TQ1_0_BLOCK_BYTES;
    for (let m = 0; m < 32; m++) for (let n = 0; n < 5; n++) codes[e + m + 32 * n] = digit(bytes[o + m]!, n) - 1;
    for (let m = 0; m < 16; m++) for (let n = 0; n < 5; n++) codes[e + 160 + m + 16 * n] = digit(bytes[o + 32 + m]!, n) - 1;
    for (let j = 0; j < 4; j++) for (let n = 0; n < 4; n++) codes[e + 240 + j + 4 * n] = digit(bytes[o + 48 + j]!, n) - 1;
    scales[b] = fromF16Bits(view.getUint16(o + 52, true));
  }
  return { codes, scales };
}
