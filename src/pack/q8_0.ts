import { fromF16Bits, toF16Bits } from "./float16.js";

/**
 * ggml's Q8_0 (quantize_row_q8_0_ref): blocks of 32 values as an f16 scale d = absmax / 127
 * followed by 32 int8 q = round(x / d), rounding half away from zero, in float32 arithmetic.
 * GGUF embeddings and output heads use it to halve F16's size at little cost.
 */
export const Q8_0_BLOCK = 32;
export const Q8_0_BLOCK_BYTES = 2 + Q8_0_BLOCK;

/** Quantizes `values` (a multiple of 32 long) into Q8_0 blocks. */
export function quantizeQ8_0(values: Float32Array): Uint8Array {
  if (values.length % Q8_0_BLOCK !== 0) throw new RangeError(`Q8_0 needs a multiple of ${Q8_0_BLOCK} values, got ${values.length}`);
  const blocks = values.length / Q8_0_BLOCK;
  const out = new Uint8Array(blocks * Q8_0_BLOCK_BYTES);
  const codes = new Int8Array(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const start = b * Q8_0_BLOCK;
    let amax = 0;
    for (let j = 0; j < Q8_0_BLOCK; j++) {
      const v = values[start + j]!;
      const a = v < 0 ? -v : v;
      if (a > amax) amax = a;
    }
    const d = Math.fround(amax / 127);
    const inverse = d === 0 ? 0 : Math.fround(1 / d);
    const at = b * Q8_0_BLOCK_BYTES;
    const half = toF16Bits(d);
    out[at] = half & 0xff;
    out[at + 1] = half >>> 8;
    for (let j = 0; j < Q8_0_BLOCK; j++) {
      const x = Math.fround(values[start + j]! * inverse);
      // roundf: half away from zero (x + 0.5 is exact in double for |x| <= 127)
      codes[at + 2 + j] = x < 0 ? -Math.floor(0.5 - x) : Math.floor(x + 0.5);
    }
  }
  return out;
}

export function dequantizeQ8_0(bytes: Uint8Array): Float32Array {
  if (bytes.length % Q8_0_BLOCK_BYTES !== 0) throw new RangeError(`Q8_0 data must be whole ${Q8_0_BLOCK_BYTES}-byte blocks, got ${bytes.length} bytes`);
  const blocks = bytes.length / Q8_0_BLOCK_BYTES;
  const out = new Float32Array(blocks * Q8_0_BLOCK);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let b = 0; b < blocks; b++) {
    const at = b * Q8_0_BLOCK_BYTES;
    const d = fromF16Bits(view.getUint16(at, true));
    for (let j = 0; j < Q8_0_BLOCK; j++) out[b * Q8_0_BLOCK + j] = d * view.getInt8(at + 2 + j);
  }
  return out;
}
