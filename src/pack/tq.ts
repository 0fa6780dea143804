import { B158Error } from "../errors.js";
import { checkCodes, checkPayload, decodeTarget } from "./check.js";
import { codeWords, invalidBits, minusOne, plusOne, reportNotTernary } from "./swar.js";
import { fromF16Bits, toF16Bits } from "./float16.js";
import { TQ1_0_BLOCK_BYTES, TQ2_0_BLOCK_BYTES, TQ_BLOCK } from "./layouts.js";
import { firstCode3, packedCodeError, scanCode3, type CodeScan, type DecodeContext } from "./packed-code.js";

/**
 * llama.cpp TQ2_0 and TQ1_0 (ggml-common.h block_tq2_0 / block_tq1_0; docs/layouts.md):
 * 256-element blocks along each row, codes q = t + 1, and the
 * f16 scale d last. d = f16(scale) for a block with any nonzero and 0 for an all-zero block, which
 * is what llama.cpp's absmax quantizer writes for ternary x scale input, so the bytes match its own.
 * `scale` is per tensor, or per block (an array with one entry per 256 elements).
 */
export type BlockScales = number | ArrayLike<number>;

/** f16 bits of a block's d; a scale f16 cannot hold (0, subnormal-flushed, Inf, NaN) is an error, never garbage. */
function blockScaleBits(scales: BlockScales, block: number, layout: string): number {
  const scale = typeof scales === "number" ? scales : scales[block]!;
  const bits = toF16Bits(scale);
  if ((bits & 0x7fff) === 0 || (bits & 0x7c00) === 0x7c00 || !(scale > 0)) {
    throw new B158Error("E_SCALE_RANGE", `scale ${scale} of block ${block} is not a positive finite f16 (6e-8 .. 65504), which ${layout} blocks store`, {
      hint: "Use i2_s (f32 scale) for tensors with such scales.",
      details: { block, scale, layout },
    });
  }
  return bits;
}

/** blockScaleBits per block, converted once when the scale is per tensor (every nonzero block has the same d). */
export function scaleBitsOf(scales: BlockScales, layout = "TQ"): (block: number) => number {
  if (typeof scales !== "number") return (block) => blockScaleBits(scales, block, layout);
  let bits: number | undefined;
  return (block) => (bits ??= blockScaleBits(scales, block, layout));
}

export function checkScales(scales: BlockScales, blocks: number, layout = "TQ"): void {
  if (typeof scales !== "number" && scales.length !== blocks) {
    throw new B158Error("E_INTERNAL", `${layout} packing got ${scales.length} block scales for ${blocks} blocks`);
  }
}

function checkShape(M: number, K: number, layout: string): void {
  if (K % TQ_BLOCK !== 0) {
    throw new B158Error("E_LAYOUT_SHAPE", `${layout} needs K % 256 == 0; K = ${K} is not`, { details: { layout, M, K, rule: "K % 256 == 0" } });
  }
}

export function packTq2_0(codes: Int8Array, M: number, K: number, scales: BlockScales): Uint8Array {
  checkShape(M, K, "tq2_0");
  checkCodes(codes, M, K, "tq2_0");
  const blocks = (M * K) / TQ_BLOCK;
  checkScales(scales, blocks);
  const out = new Uint8Array(blocks * TQ2_0_BLOCK_BYTES);
  const view = new DataView(out.buffer);
  // 66-byte blocks are 2-aligned: each four packed bytes go out as two 16-bit stores
  const halves = new Uint16Array(out.buffer);
  const words = codeWords(codes);
  const scaleBits = scaleBitsOf(scales);
  let bad = 0;
  for (let b = 0; b < blocks; b++) {
    const e = b * (TQ_BLOCK / 4); // block start, in words
    const o = b * TQ2_0_BLOCK_BYTES;
    let any = 0;
    // byte 32j + m holds elements 128j + 32n + m at bits 2n: four output bytes per step
    for (let j = 0; j < 2; j++) {
      for (let w = 0; w < 8; w++) {
        const i = e + 32 * j + w;
        const r0 = words[i]!;
        const r1 = words[i + 8]!;
        const r2 = words[i + 16]!;
        const r3 = words[i + 24]!;
        any |= r0 | r1 | r2 | r3;
        const v0 = plusOne(r0);
        const v1 = plusOne(r1);
        const v2 = plusOne(r2);
        const v3 = plusOne(r3);
        bad |= invalidBits(v0) | invalidBits(v1) | invalidBits(v2) | invalidBits(v3);
        const packed = v0 | (v1 << 2) | (v2 << 4) | (v3 << 6);
        const at = (o + 32 * j + 4 * w) >>> 1;
        halves[at] = packed;
        halves[at + 1] = packed >>> 16;
      }
    }
    view.setUint16(o + 64, any !== 0 ? scaleBits(b) : 0, true);
  }
  if (bad !== 0) reportNotTernary(codes, K);
  return out;
}

/** `out`: M * K codes to decode into (every one is written), instead of a new array. The unused code 3 is E_PACKED_CODE. */
export function unpackTq2_0(bytes: Uint8Array, M: number, K: number, out?: Int8Array, context?: DecodeContext): { codes: Int8Array; scales: Float32Array } {
  checkShape(M, K, "tq2_0");
  const blocks = (M * K) / TQ_BLOCK;
  checkPayload(bytes, blocks * TQ2_0_BLOCK_BYTES, "tq2_0", M, K);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const codes = decodeTarget(out, M * K, "tq2_0", 4);
  const words = new Uint32Array(codes.buffer, codes.byteOffset, codes.length >>> 2);
  const scales = new Float32Array(blocks);
  // 66-byte blocks are only 2-aligned: read each word as two halves
  const blockScale = cachedF16();
  const halves = bytes.byteOffset % 2 === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 1) : undefined;
  let bad = 0;
  for (let b = 0; b < blocks; b++) {
    const e = b * (TQ_BLOCK / 4); // block start, in words
    const o = b * TQ2_0_BLOCK_BYTES;
    // bytes 32j + m .. + 3 hold elements 128j + 32n + m .. + 3 at bits 2n: four codes per store
    for (let j = 0; j < 2; j++) {
      for (let w = 0; w < 8; w++) {
        const at = o + 32 * j + 4 * w;
        const packed = halves !== undefined ? halves[at >>> 1]! | (halves[(at >>> 1) + 1]! << 16) : view.getUint32(at, true);
        const i = e + 32 * j + w;
        bad |= packed & (packed >>> 1) & 0x55555555;
        words[i] = minusOne(packed & 0x03030303);
        words[i + 8] = minusOne((packed >>> 2) & 0x03030303);
        words[i + 16] = minusOne((packed >>> 4) & 0x03030303);
        words[i + 24] = minusOne((packed >>> 6) & 0x03030303);
      }
    }
    scales[b] = blockScale(view.getUint16(o + 64, true));
  }
  if (bad !== 0) {
    for (let o = 0; o < bytes.length; o += TQ2_0_BLOCK_BYTES) {
      const at = firstCode3(bytes, o, o + 64);
      if (at !== -1) throw packedCodeError("tq2_0", context, at, `the 2-bit code 3 (codes are 0, 1, 2) in byte 0x${bytes[at]!.toString(16).padStart(2, "0")}`);
    }
  }
  return { codes, scales };
}

/** fromF16Bits with a one-entry cache: a tensor's blocks share one d (or 0), so decoding is rarely needed. */
export function cachedF16(): (bits: number) => number {
  let lastBits = 0;
  let last = 0;
  return (bits) => {
    if (bits !== lastBits) {
      lastBits = bits;
      last = fromF16Bits(bits);
    }
    return last;
  };
}

/** 5 trits (0..242) to the fixed-point byte ceil(v * 256 / 243). */
const TRITS_TO_BYTE = Uint8Array.from({ length: 243 }, (_, v) => Math.floor((v * 256 + 242) / 243));
const POW3 = [1, 3, 9, 27, 81] as const;

export function packTq1_0(codes: Int8Array, M: number, K: number, scales: BlockScales): Uint8Array {
  checkShape(M, K, "tq1_0");
  checkCodes(codes, M, K, "tq1_0");
  const blocks = (M * K) / TQ_BLOCK;
  checkScales(scales, blocks);
  const out = new Uint8Array(blocks * TQ1_0_BLOCK_BYTES);
  const view = new DataView(out.buffer);
  const words = codeWords(codes);
  const T = TRITS_TO_BYTE;
  const scaleBits = scaleBitsOf(scales);
  let bad = 0;
  // Per byte, 81a + 27b + 9c + 3d + e <= 242 never carries, so four base-3 numbers build at once.
  const base3 = (w0: number, w1: number, w2: number, w3: number, w4: number): number => {
    const v0 = plusOne(w0);
    const v1 = plusOne(w1);
    const v2 = plusOne(w2);
    const v3 = plusOne(w3);
    const v4 = plusOne(w4);
    bad |= invalidBits(v0) | invalidBits(v1) | invalidBits(v2) | invalidBits(v3) | invalidBits(v4);
    return (Math.imul(v0, 81) + Math.imul(v1, 27) + Math.imul(v2, 9) + Math.imul(v3, 3) + v4) >>> 0;
  };
  const put = (at: number, sums: number): void => {
    out[at] = T[sums & 0xff]!;
    out[at + 1] = T[(sums >>> 8) & 0xff]!;
    out[at + 2] = T[(sums >>> 16) & 0xff]!;
    out[at + 3] = T[sums >>> 24]!;
  };
  for (let b = 0; b < blocks; b++) {
    const e = b * (TQ_BLOCK / 4); // block start, in words
    const o = b * TQ1_0_BLOCK_BYTES;
    let any = 0;
    for (let w = 0; w < TQ_BLOCK / 4; w++) any |= words[e + w]!;
    // qs[m], m < 32: elements m + 32n (n = 0..4), the first the most significant digit
    for (let w = 0; w < 8; w++) put(o + 4 * w, base3(words[e + w]!, words[e + w + 8]!, words[e + w + 16]!, words[e + w + 24]!, words[e + w + 32]!));
    // qs[32 + m], m < 16: elements 160 + m + 16n
    for (let w = 0; w < 4; w++) put(o + 32 + 4 * w, base3(words[e + 40 + w]!, words[e + 44 + w]!, words[e + 48 + w]!, words[e + 52 + w]!, words[e + 56 + w]!));
    // qh[j], j < 4: elements 240 + j + 4n (n = 0..3), the fifth digit 0 (code -1 + 1)
    put(o + 48, base3(words[e + 60]!, words[e + 61]!, words[e + 62]!, words[e + 63]!, 0xffffffff));
    view.setUint16(o + 52, any !== 0 ? scaleBits(b) : 0, true);
  }
  if (bad !== 0) reportNotTernary(codes, K);
  return out;
}

/** Digit n (0 = most significant) of a TQ1_0 byte, as ggml decodes it: ((b * 3^n mod 256) * 3) >> 8. */
function digit(byte: number, n: number): number {
  return (((byte * POW3[n]!) & 0xff) * 3) >>> 8;
}

/** Code (digit - 1) n of every TQ1_0 byte, at 5 x byte + n: one load per code when decoding. */
const CODES_OF_BYTE = Int8Array.from({ length: 256 * 5 }, (_, i) => digit(Math.floor(i / 5), i % 5) - 1);

/**
 * 1 for the bytes TQ1_0's packer never writes, which ggml would still decode to some trits: a qs byte
 * that is not ceil(v * 256 / 243) of a v in 0..242 (13 of the 256), a qh byte that is not that of
 * 3 * v (its unused fifth trit 0) for a v in 0..80. Two readers could disagree on them: E_PACKED_CODE.
 */
const NOT_QS = Uint8Array.from({ length: 256 }, () => 1);
for (const byte of TRITS_TO_BYTE) NOT_QS[byte] = 0;
const NOT_QH = Uint8Array.from({ length: 256 }, () => 1);
for (let v = 0; v < 81; v++) NOT_QH[TRITS_TO_BYTE[3 * v]!] = 0;

/** `out`: M * K codes to decode into (every one is written), instead of a new array. A byte its packer never writes is E_PACKED_CODE. */
export function unpackTq1_0(bytes: Uint8Array, M: number, K: number, out?: Int8Array, context?: DecodeContext): { codes: Int8Array; scales: Float32Array } {
  checkShape(M, K, "tq1_0");
  const blocks = (M * K) / TQ_BLOCK;
  checkPayload(bytes, blocks * TQ1_0_BLOCK_BYTES, "tq1_0", M, K);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const codes = decodeTarget(out, M * K, "tq1_0");
  const scales = new Float32Array(blocks);
  const blockScale = cachedF16();
  let bad = 0;
  for (let b = 0; b < blocks; b++) {
    const e = b * TQ_BLOCK;
    const o = b * TQ1_0_BLOCK_BYTES;
    for (let m = 0; m < 32; m++) {
      const byte = bytes[o + m]!;
      bad |= NOT_QS[byte]!;
      const c = 5 * byte;
      for (let n = 0; n < 5; n++) codes[e + m + 32 * n] = CODES_OF_BYTE[c + n]!;
    }
    for (let m = 0; m < 16; m++) {
      const byte = bytes[o + 32 + m]!;
      bad |= NOT_QS[byte]!;
      const c = 5 * byte;
      for (let n = 0; n < 5; n++) codes[e + 160 + m + 16 * n] = CODES_OF_BYTE[c + n]!;
    }
    for (let j = 0; j < 4; j++) {
      const byte = bytes[o + 48 + j]!;
      bad |= NOT_QH[byte]!;
      const c = 5 * byte;
      for (let n = 0; n < 4; n++) codes[e + 240 + j + 4 * n] = CODES_OF_BYTE[c + n]!;
    }
    scales[b] = blockScale(view.getUint16(o + 52, true));
  }
  if (bad !== 0) {
    const at = firstNonCanonicalTq1_0(bytes);
    const qh = at % TQ1_0_BLOCK_BYTES >= 48;
    throw packedCodeError("tq1_0", context, at, `0x${bytes[at]!.toString(16).padStart(2, "0")}, not the encoding TQ1_0 writes for any ${qh ? "four trits (qh, fifth trit 0)" : "five trits (qs)"}`);
  }
  return { codes, scales };
}

/** Offset of the first TQ1_0 code byte its packer never writes (the caller knows there is one). */
function firstNonCanonicalTq1_0(bytes: Uint8Array): number {
  return scanTq1_0(bytes).first;
}

/** TQ1_0 code bytes its packer never writes, over whole 54-byte blocks (d is not a code). */
export function scanTq1_0(bytes: Uint8Array): CodeScan {
  let count = 0;
  let first = -1;
  for (let o = 0; o + TQ1_0_BLOCK_BYTES <= bytes.length; o += TQ1_0_BLOCK_BYTES) {
    for (let m = 0; m < 52; m++) {
      if ((m < 48 ? NOT_QS : NOT_QH)[bytes[o + m]!] === 0) continue;
      if (count++ === 0) first = o + m;
    }
  }
  return { count, first };
}

/** TQ2_0 code bytes holding the 2-bit code 3, over whole 66-byte blocks (d is not a code). */
export function scanTq2_0(bytes: Uint8Array): CodeScan {
  let count = 0;
  let first = -1;
  for (let o = 0; o + TQ2_0_BLOCK_BYTES <= bytes.length; o += TQ2_0_BLOCK_BYTES) {
    const block = scanCode3(bytes, o, o + 64);
    if (block.count > 0 && count === 0) first = block.first;
    count += block.count;
  }
  return { count, first };
}
