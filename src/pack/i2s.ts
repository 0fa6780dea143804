import { checkCodes, checkPayload, decodeTarget } from "./check.js";
import { codeWords, invalidBits, minusOne, plusOne, reportNotTernary } from "./swar.js";
import { I2_S_TAIL_BYTES } from "./layouts.js";

/**
 * bitnet.cpp I2_S (docs/layouts.md; bitnet.cpp's quantize_i2_s). The flattened tensor is cut into blocks of
 * 128 elements (x86 and the official files) or 64 (ARM builds since Nov 2025); byte g of a block
 * holds elements g, g + B/4, g + B/2, g + 3B/4 in bits 7:6, 5:4, 3:2, 1:0 as code = t + 1.
 * Then the f32 scale, then 28 zero bytes (llama-quantize leaves them uninitialised; we write zeros).
 */
export function packI2S(codes: Int8Array, M: number, K: number, scale: number, blockSize: 128 | 64 = 128): Uint8Array {
  checkCodes(codes, M, K, "i2_s");
  const n = M * K;
  const quarter = blockSize / 4;
  const out = new Uint8Array(n / 4 + I2_S_TAIL_BYTES);
  // Four output bytes per step: words at g, g + B/4, g + B/2, g + 3B/4 give the four 2-bit fields.
  const words = codeWords(codes);
  const outWords = new Uint32Array(out.buffer, 0, n / 16);
  const q = quarter / 4; // words per quarter block
  let bad = 0;
  for (let base = 0, o = 0; o < outWords.length; base += 4 * q) {
    for (let g = 0; g < q; g++, o++) {
      const v0 = plusOne(words[base + g]!);
      const v1 = plusOne(words[base + g + q]!);
      const v2 = plusOne(words[base + g + 2 * q]!);
      const v3 = plusOne(words[base + g + 3 * q]!);
      bad |= invalidBits(v0) | invalidBits(v1) | invalidBits(v2) | invalidBits(v3);
      outWords[o] = (v0 << 6) | (v1 << 4) | (v2 << 2) | v3;
    }
  }
  if (bad !== 0) reportNotTernary(codes, K);
  new DataView(out.buffer).setFloat32(n / 4, scale, true);
  return out;
}

/** `out`: M * K codes to decode into (every one is written), instead of a new array. */
export function unpackI2S(bytes: Uint8Array, M: number, K: number, blockSize: 128 | 64 = 128, out?: Int8Array): { codes: Int8Array; scale: number } {
  const n = M * K;
  checkPayload(bytes, n / 4 + I2_S_TAIL_BYTES, "i2_s", M, K);
  const codes = decodeTarget(out, n, "i2_s");
  if (bytes.byteOffset % 4 === 0 && codes.byteOffset % 4 === 0) unpackWords(bytes, codes, blockSize);
  else unpackBytes(bytes, codes, blockSize);
  const scale = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getFloat32(n / 4, true);
  return { codes, scale };
}

/** The packer's inverse, four bytes (16 codes) per step; n is a multiple of the block, so of 16. */
function unpackWords(bytes: Uint8Array, codes: Int8Array, blockSize: number): void {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, codes.length >>> 4);
  const out = new Uint32Array(codes.buffer, codes.byteOffset, codes.length >>> 2);
  const q = blockSize / 16; // words per quarter block
  for (let base = 0, o = 0; o < words.length; base += 4 * q) {
    for (let g = 0; g < q; g++, o++) {
      const w = words[o]!;
      out[base + g] = decodeI2S((w >>> 6) & 0x03030303);
      out[base + g + q] = decodeI2S((w >>> 4) & 0x03030303);
      out[base + g + 2 * q] = decodeI2S((w >>> 2) & 0x03030303);
      out[base + g + 3 * q] = decodeI2S(w & 0x03030303);
    }
  }
}

/** Per byte code - 1, except that dequantize_row_i2_s maps the unused code 3 to 0; so do we. */
function decodeI2S(v: number): number {
  const three = v & (v >>> 1) & 0x01010101;
  return (minusOne(v) & ~Math.imul(three, 0xff)) >>> 0;
}

function unpackBytes(bytes: Uint8Array, codes: Int8Array, blockSize: number): void {
  const quarter = blockSize / 4;
  for (let base = 0, o = 0; base < codes.length; base += blockSize, o += quarter) {
    for (let g = 0; g < quarter; g++) {
      const b = bytes[o + g]!;
      const i = base + g;
      codes[i] = I2S_DECODE[(b >>> 6) & 3]!;
      codes[i + quarter] = I2S_DECODE[(b >>> 4) & 3]!;
      codes[i + 2 * quarter] = I2S_DECODE[(b >>> 2) & 3]!;
      codes[i + 3 * quarter] = I2S_DECODE[b & 3]!;
    }
  }
}

const I2S_DECODE = Int8Array.from([-1, 0, 1, 0]);
