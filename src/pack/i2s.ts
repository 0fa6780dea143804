import { checkCodes, checkPayload, decodeTarget } from "./check.js";
import { codeWords, invalidBits, minusOne, plusOne, reportNotTernary } from "./swar.js";
import { I2_S_TAIL_BYTES } from "./layouts.js";
import { firstCode3, packedCodeError, type DecodeContext } from "./packed-code.js";

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

/**
 * `out`: M * K codes to decode into (every one is written), instead of a new array. The unused code 3
 * is E_PACKED_CODE (packed-code.ts); the scale and the 28 bytes after it are not codes.
 */
export function unpackI2S(bytes: Uint8Array, M: number, K: number, blockSize: 128 | 64 = 128, out?: Int8Array, context?: DecodeContext): { codes: Int8Array; scale: number } {
  const n = M * K;
  checkPayload(bytes, n / 4 + I2_S_TAIL_BYTES, "i2_s", M, K);
  const codes = decodeTarget(out, n, "i2_s");
  const bad = bytes.byteOffset % 4 === 0 && codes.byteOffset % 4 === 0 ? unpackWords(bytes, codes, blockSize) : unpackBytes(bytes, codes, blockSize);
  if (bad !== 0) {
    const at = firstCode3(bytes, 0, n / 4);
    throw packedCodeError("i2_s", context, at, `the 2-bit code 3 (codes are 0, 1, 2) in byte 0x${bytes[at]!.toString(16).padStart(2, "0")}`);
  }
  const scale = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getFloat32(n / 4, true);
  return { codes, scale };
}

/** The packer's inverse, four bytes (16 codes) per step; n is a multiple of the block, so of 16. Nonzero when some code was 3. */
function unpackWords(bytes: Uint8Array, codes: Int8Array, blockSize: number): number {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, codes.length >>> 4);
  const out = new Uint32Array(codes.buffer, codes.byteOffset, codes.length >>> 2);
  const q = blockSize / 16; // words per quarter block
  let bad = 0;
  for (let base = 0, o = 0; o < words.length; base += 4 * q) {
    for (let g = 0; g < q; g++, o++) {
      const w = words[o]!;
      // a 2-bit field is 3 iff both its bits are set
      bad |= w & (w >>> 1) & 0x55555555;
      out[base + g] = minusOne((w >>> 6) & 0x03030303);
      out[base + g + q] = minusOne((w >>> 4) & 0x03030303);
      out[base + g + 2 * q] = minusOne((w >>> 2) & 0x03030303);
      out[base + g + 3 * q] = minusOne(w & 0x03030303);
    }
  }
  return bad;
}

function unpackBytes(bytes: Uint8Array, codes: Int8Array, blockSize: number): number {
  const quarter = blockSize / 4;
  let bad = 0;
  for (let base = 0, o = 0; base < codes.length; base += blockSize, o += quarter) {
    for (let g = 0; g < quarter; g++) {
      const b = bytes[o + g]!;
      const i = base + g;
      bad |= b & (b >>> 1) & 0x55;
      codes[i] = ((b >>> 6) & 3) - 1;
      codes[i + quarter] = ((b >>> 4) & 3) - 1;
      codes[i + 2 * quarter] = ((b >>> 2) & 3) - 1;
      codes[i + 3 * quarter] = (b & 3) - 1;
    }
  }
  return bad;
}
