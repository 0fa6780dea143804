import { B158Error } from "../errors.js";
import { checkCodes, checkPayload, decodeTarget } from "./check.js";
import { packedCodeError, type DecodeContext } from "./packed-code.js";
import { codeWords, invalidBits, minusOne, plusOne, reportNotTernary } from "./swar.js";
import { Q2_0_BLOCK, Q2_0_BLOCK_BYTES } from "./layouts.js";
import { cachedF16, checkScales, scaleBitsOf, type BlockScales } from "./tq.js";

/**
 * Mainline llama.cpp's Q2_0 (ggml type 42; ggml-common.h block_q2_0, ggml-quants.c
 * quantize_row_q2_0_ref / dequantize_row_q2_0; docs/layouts.md): 64-element blocks along each row,
 * 18 bytes each: the f16 scale d first, then 16 bytes of 2-bit codes q = t + 1, element j of the
 * block at bits 2 * (j % 4) of byte j / 4. Code 3 (value +2 x d) is legal in Q2_0 but not ternary.
 * d = f16(scale) for a block with any nonzero and 0 for an all-zero block: what the reference
 * quantizer (d = absmax of the block) writes for ternary x scale input, so the bytes match its own.
 * `scales` is per tensor, or per block (one entry per 64 elements).
 */
export function packQ2_0(codes: Int8Array, M: number, K: number, scales: BlockScales): Uint8Array {
  checkShape(M, K);
  checkCodes(codes, M, K, "q2_0");
  const blocks = (M * K) / Q2_0_BLOCK;
  checkScales(scales, blocks, "Q2_0");
  const out = new Uint8Array(blocks * Q2_0_BLOCK_BYTES);
  // 18-byte blocks are 2-aligned: d and each two packed bytes go out as one 16-bit store
  const halves = new Uint16Array(out.buffer);
  const words = codeWords(codes);
  const scaleBits = scaleBitsOf(scales, "Q2_0");
  let bad = 0;
  for (let b = 0; b < blocks; b++) {
    const e = b * (Q2_0_BLOCK / 4); // block start, in words (four codes each)
    const h = (b * Q2_0_BLOCK_BYTES) >>> 1;
    let any = 0;
    for (let w = 0; w < Q2_0_BLOCK / 4; w += 2) {
      const r0 = words[e + w]!;
      const r1 = words[e + w + 1]!;
      any |= r0 | r1;
      const v0 = plusOne(r0);
      const v1 = plusOne(r1);
      bad |= invalidBits(v0) | invalidBits(v1);
      halves[h + 1 + (w >>> 1)] = packByte(v0) | (packByte(v1) << 8);
    }
    halves[h] = any !== 0 ? scaleBits(b) : 0;
  }
  if (bad !== 0) reportNotTernary(codes, K);
  return out;
}

/** The four 2-bit values of one word (bytes = elements 4m .. 4m + 3) as one byte, the first element lowest. */
function packByte(v: number): number {
  return (v & 0x03) | ((v >>> 6) & 0x0c) | ((v >>> 12) & 0x30) | ((v >>> 18) & 0xc0);
}

/** Per byte value: its four codes t = q - 1 as one little-endian word (code 3 gives 2), and whether one is code 3. */
const DECODED = Uint32Array.from({ length: 256 }, (_, byte) => minusOne((byte & 3) | (((byte >>> 2) & 3) << 8) | (((byte >>> 4) & 3) << 16) | (((byte >>> 6) & 3) << 24)));
const HAS_CODE_3 = Uint8Array.from({ length: 256 }, (_, byte) => (byte & (byte >>> 1) & 0x55) !== 0 ? 1 : 0);

/**
 * `out`: M * K codes to decode into (every one is written), instead of a new array. A code 3 is an
 * E_PACKED_CODE error naming `tensor`: it is a valid Q2_0 weight (+2 x d), but not a ternary one.
 */
export function unpackQ2_0(bytes: Uint8Array, M: number, K: number, out?: Int8Array, context?: DecodeContext): { codes: Int8Array; scales: Float32Array } {
  checkShape(M, K);
  const blocks = (M * K) / Q2_0_BLOCK;
  checkPayload(bytes, blocks * Q2_0_BLOCK_BYTES, "q2_0", M, K);
  const codes = decodeTarget(out, M * K, "q2_0", 4);
  const words = new Uint32Array(codes.buffer, codes.byteOffset, codes.length >>> 2);
  const scales = new Float32Array(blocks);
  const blockScale = cachedF16();
  for (let b = 0; b < blocks; b++) {
    const o = b * Q2_0_BLOCK_BYTES;
    const e = b * (Q2_0_BLOCK / 4);
    let bad = 0;
    for (let m = 0; m < Q2_0_BLOCK / 4; m++) {
      const byte = bytes[o + 2 + m]!;
      bad |= HAS_CODE_3[byte]!;
      words[e + m] = DECODED[byte]!;
    }
    if (bad !== 0) throw invalidCode(bytes, b, K, context);
    scales[b] = blockScale(bytes[o]! | (bytes[o + 1]! << 8));
  }
  return { codes, scales };
}

function invalidCode(bytes: Uint8Array, block: number, K: number, context: DecodeContext | undefined): B158Error {
  const o = block * Q2_0_BLOCK_BYTES;
  let j = 0;
  while (((bytes[o + 2 + (j >>> 2)]! >>> (2 * (j & 3))) & 3) !== 3) j++;
  const index = block * Q2_0_BLOCK + j;
  return packedCodeError("q2_0", context, o + 2 + (j >>> 2), `code 3 (+2 x d) for row ${Math.floor(index / K)}, column ${index % K}`);
}

function checkShape(M: number, K: number): void {
  if (K % Q2_0_BLOCK !== 0) {
    throw new B158Error("E_LAYOUT_SHAPE", `q2_0 needs K % 64 == 0; K = ${K} is not`, { details: { layout: "q2_0", M, K, rule: "K % 64 == 0" } });
  }
}
