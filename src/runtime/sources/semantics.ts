import { B158Error } from "../../errors.js";
import { fromF16Bits } from "../../pack/float16.js";

/**
 * What a source checkpoint's linear weights mean in their framework, computed here without the
 * converter's packing code (src/pack), so a bug there cannot cancel out in `b158 eval`.
 *
 * - Latent weights ("online"): transformers' WeightQuant / AutoBitLinear online and 1bitLLM's
 *   weight_quant ternarize per forward with one absmean scale per tensor. The arithmetic is
 *   docs/ternarization.md's: mean |W| summed in float64 (16-bit weights through a histogram of
 *   their magnitudes, so the sum is order-free) and rounded to float32,
 *   inv = f32(1 / max(mean, 1e-5)), t = clamp(roundHalfEven(f32(W * inv)), -1, 1), scale = f32(1 / inv).
 * - Packed weights: transformers' pack_weights, uint8 [ceil(out/4), in] with bits 2i..2i+1 of
 *   packed[r][c] holding t[i*R + r][c] + 1; weight_scale multiplies (autobitlinear) or divides
 *   (bitlinear).
 */
export const ABSMEAN_FLOOR = 1e-5;

/** Absmean ternarization of a latent weight (raw little-endian bytes of `dtype`). */
export function absmeanTernarize(bytes: Uint8Array, dtype: string, elements: number, tensor: string): { codes: Int8Array; scale: number } {
  if (dtype === "F16" || dtype === "BF16") return absmeanHalf(halfView(bytes, elements), dtype, tensor);
  if (dtype === "F32" || dtype === "F64") return absmeanFloat(floatValues(bytes, dtype, elements), tensor);
  throw new B158Error("E_INTERNAL", `latent weights of dtype ${dtype} cannot be read`);
}

function nonFinite(tensor: string): B158Error {
  return new B158Error("E_NONFINITE", `${tensor}: latent weights hold NaN or Inf; absmean ternarization is undefined`, { details: { tensor } });
}

function inverseScale(sum: number, elements: number): number {
  const mean = Math.fround(elements === 0 ? 0 : sum / elements);
  return Math.fround(1 / Math.max(mean, ABSMEAN_FLOOR));
}

/** |v * inv| > 0.5 codes to +-1; exactly 0.5 rounds half to even, to 0. */
function code(value: number, inv: number): number {
  const v = Math.fround(value * inv);
  return v > 0.5 ? 1 : v < -0.5 ? -1 : 0;
}

function absmeanHalf(bits: Uint16Array, dtype: "F16" | "BF16", tensor: string): { codes: Int8Array; scale: number } {
  const { threshold, scale } = absmeanThreshold16(bits, dtype, tensor);
  const codes = new Int8Array(bits.length);
  for (let i = 0; i < bits.length; i++) codes[i] = (bits[i]! & 0x7fff) > threshold ? (bits[i]! & 0x8000 ? -1 : 1) : 0;
  return { codes, scale };
}

/**
 * Absmean of 16-bit weights as the kernels' threshold16 takes it. A histogram of the 32768
 * magnitude patterns gives the exact multiset of |W|, so the float64 sum does not depend on element
 * order. A weight's code is then a function of its pattern, monotone in the magnitude bits (finite
 * patterns order as their values, and f32(|w| * inv) is monotone in |w|): +-1 above the largest
 * pattern that codes to 0, the threshold, and 0 up to it.
 */
export function absmeanThreshold16(bits: Uint16Array, dtype: "F16" | "BF16", tensor: string): { threshold: number; scale: number } {
  const counts = histogram15(bits);
  const value = dtype === "BF16" ? bf16Value : fromF16Bits;
  let sum = 0;
  for (let pattern = 0; pattern < 32768; pattern++) {
    const n = counts[pattern]!;
    if (n === 0) continue;
    const magnitude = value(pattern);
    if (!Number.isFinite(magnitude)) throw nonFinite(tensor);
    sum += n * magnitude;
  }
  const inv = inverseScale(sum, bits.length);
  let threshold = 0x7fff;
  for (let pattern = 0; pattern < 0x7fff; pattern++) {
    if (code(value(pattern + 1), inv) !== 0) {
      threshold = pattern;
      break;
    }
  }
  return { threshold, scale: Math.fround(1 / inv) };
}

/** Counts of the 15 magnitude bits of each pattern (two patterns per 32-bit load where aligned). */
function histogram15(bits: Uint16Array): Uint32Array {
  const counts = new Uint32Array(32768);
  let i = 0;
  if (bits.byteOffset % 4 === 0) {
    const pairs = new Uint32Array(bits.buffer, bits.byteOffset, bits.length >>> 1);
    for (let k = 0; k < pairs.length; k++) {
      const w = pairs[k]!;
      counts[w & 0x7fff]!++;
      counts[(w >>> 16) & 0x7fff]!++;
    }
    i = 2 * pairs.length;
  }
  for (; i < bits.length; i++) counts[bits[i]! & 0x7fff]!++;
  return counts;
}

function absmeanFloat(values: Float32Array | Float64Array, tensor: string): { codes: Int8Array; scale: number } {
  let s0 = 0;
  let s1 = 0;
  const n = values.length;
  for (let i = 0; i + 1 < n; i += 2) {
    s0 += Math.abs(values[i]!);
    s1 += Math.abs(values[i + 1]!);
  }
  if (n % 2 === 1) s0 += Math.abs(values[n - 1]!);
  const sum = s0 + s1;
  if (!Number.isFinite(sum)) throw nonFinite(tensor);
  const inv = inverseScale(sum, n);
  const codes = new Int8Array(n);
  for (let i = 0; i < n; i++) codes[i] = code(values[i]!, inv);
  return { codes, scale: Math.fround(1 / inv) };
}

const widen = new Float32Array(1);
const widenBits = new Uint32Array(widen.buffer);
/** bf16 is the top half of a float32: exact. */
function bf16Value(bits: number): number {
  widenBits[0] = bits << 16;
  return widen[0]!;
}

function halfView(bytes: Uint8Array, elements: number): Uint16Array {
  const aligned = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice();
  return new Uint16Array(aligned.buffer, aligned.byteOffset, elements);
}

function floatValues(bytes: Uint8Array, dtype: "F32" | "F64", elements: number): Float32Array | Float64Array {
  const size = dtype === "F32" ? 4 : 8;
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  return dtype === "F32" ? new Float32Array(aligned.buffer, aligned.byteOffset, elements) : new Float64Array(aligned.buffer, aligned.byteOffset, elements);
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
