import { B158Error } from "../../errors.js";
import { halfBitsToFloat32 } from "../../pack/float16.js";

/**
 * What a source checkpoint's linear weights mean in their framework, computed here without the
 * converter's packing code (src/pack), so a bug there cannot cancel out in `b158 eval`.
 *
 * - Latent weights ("online"): transformers' WeightQuant / AutoBitLinear online and 1bitLLM's
 *   weight_quant ternarize per forward with one absmean scale per tensor. The arithmetic is
 *   docs/ternarization.md's: mean |W| summed in float64 and rounded to float32,
 *   inv = f32(1 / max(mean, 1e-5)), t = clamp(roundHalfEven(f32(W * inv)), -1, 1), scale = f32(1 / inv).
 * - Packed weights: transformers' pack_weights, uint8 [ceil(out/4), in] with bits 2i..2i+1 of
 *   packed[r][c] holding t[i*R + r][c] + 1; weight_scale multiplies (autobitlinear) or divides
 *   (bitlinear).
 */
export const ABSMEAN_FLOOR = 1e-5;

/** Elements decoded per step: a float32 scratch of 4 MiB. */
const CHUNK = 1 << 20;

/** Little-endian latent float bytes as float32, `count` elements from element `start`, into `out`. */
function decodeLatent(bytes: Uint8Array, dtype: string, start: number, count: number, out: Float32Array): void {
  switch (dtype) {
    case "F32": {
      const aligned = (bytes.byteOffset + start * 4) % 4 === 0;
      const src = aligned ? new Float32Array(bytes.buffer, bytes.byteOffset + start * 4, count) : new Float32Array(bytes.slice(start * 4, (start + count) * 4).buffer);
      out.set(src);
      return;
    }
    case "BF16": {
      // bf16 is the top half of a float32: widen by shifting the bits (exact)
      const words = new Uint32Array(out.buffer, out.byteOffset, count);
      for (let i = 0; i < count; i++) words[i] = (bytes[(start + i) * 2]! | (bytes[(start + i) * 2 + 1]! << 8)) << 16;
      return;
    }
    case "F16": {
      const aligned = (bytes.byteOffset + start * 2) % 2 === 0;
      const bits = aligned ? new Uint16Array(bytes.buffer, bytes.byteOffset + start * 2, count) : new Uint16Array(bytes.slice(start * 2, (start + count) * 2).buffer);
      halfBitsToFloat32(bits, "f16", out.subarray(0, count));
      return;
    }
    case "F64": {
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64((start + i) * 8, true);
      return;
    }
    default:
      throw new B158Error("E_INTERNAL", `latent weights of dtype ${dtype} cannot be read`);
  }
}

/** Absmean ternarization of a latent weight (raw little-endian bytes of `dtype`). */
export function absmeanTernarize(bytes: Uint8Array, dtype: string, elements: number, tensor: string): { codes: Int8Array; scale: number } {
  const scratch = new Float32Array(Math.min(CHUNK, Math.max(1, elements)));
  let sum = 0;
  for (let start = 0; start < elements; start += CHUNK) {
    const count = Math.min(CHUNK, elements - start);
    decodeLatent(bytes, dtype, start, count, scratch);
    let s0 = 0;
    let s1 = 0;
    for (let i = 0; i + 1 < count; i += 2) {
      s0 += Math.abs(scratch[i]!);
      s1 += Math.abs(scratch[i + 1]!);
    }
    if (count % 2 === 1) s0 += Math.abs(scratch[count - 1]!);
    sum += s0 + s1;
  }
  if (!Number.isFinite(sum)) {
    throw new B158Error("E_NONFINITE", `${tensor}: latent weights hold NaN or Inf; absmean ternarization is undefined`, { details: { tensor } });
  }
  const mean = Math.fround(elements === 0 ? 0 : sum / elements);
  const inv = Math.fround(1 / Math.max(mean, ABSMEAN_FLOOR));
  const codes = new Int8Array(elements);
  for (let start = 0; start < elements; start += CHUNK) {
    const count = Math.min(CHUNK, elements - start);
    decodeLatent(bytes, dtype, start, count, scratch);
    for (let i = 0; i < count; i++) {
      const v = Math.fround(scratch[i]! * inv);
      // |v| > 0.5 codes to +-1; exactly 0.5 rounds half to even, to 0
      codes[start + i] = v > 0.5 ? 1 : v < -0.5 ? -1 : 0;
    }
  }
  return { codes, scale: Math.fround(1 / inv) };
}

/** transformers' quarter packing, unpacked to ternary codes [outRows, cols]. */
export function unpackQuarters(packed: Uint8Array, packedRows: number, cols: number, outRows: number, tensor: string): Int8Array {
  if (packed.byteLength !== packedRows * cols || outRows > packedRows * 4 || outRows <= (packedRows - 1) * 4) {
    throw new B158Error("E_PACKED_SHAPE", `${tensor}: ${packed.byteLength} packed bytes [${packedRows}, ${cols}] cannot hold ${outRows} rows`, { details: { tensor } });
  }
  const codes = new Int8Array(outRows * cols);
  for (let row = 0; row < outRows; row++) {
    const quarter = Math.floor(row / packedRows);
    const from = (row - quarter * packedRows) * cols;
    const shift = 2 * quarter;
    for (let c = 0; c < cols; c++) {
      const code = (packed[from + c]! >> shift) & 3;
      if (code === 3) {
        throw new B158Error("E_PACKED_CODE", `${tensor}: packed byte [${from / cols}, ${c}] holds the unused code 3 in bits ${shift}..${shift + 1}`, {
          details: { tensor },
          hint: "The checkpoint is corrupt or not in transformers' BitNet packing.",
        });
      }
      codes[row * cols + c] = code - 1;
    }
  }
  return codes;
}

/** The per-tensor scale of a packed weight: weight_scale multiplies (autobitlinear) or divides (bitlinear). */
export function packedScale(weightScale: number, convention: "multiply" | "divide", tensor: string): number {
  if (!(Number.isFinite(weightScale) && weightScale > 0)) {
    throw new B158Error("E_PACKED_SHAPE", `${tensor}: weight_scale ${weightScale} is not finite and positive`, { details: { tensor } });
  }
  return Math.fround(convention === "multiply" ? weightScale : 1 / weightScale);
}
