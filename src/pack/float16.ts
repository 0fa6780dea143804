/**
 * IEEE half (f16) and bfloat16 conversions, round-to-nearest-even, over plain numbers.
 * Node 20 has no DataView.setFloat16, and checkpoints and GGUF blocks need both directions.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 bits of `value` (after rounding `value` to float32). */
export function float32Bits(value: number): number {
  f32[0] = value;
  return u32[0]!;
}

export function float32FromBits(bits: number): number {
  u32[0] = bits >>> 0;
  return f32[0]!;
}

/** bfloat16 bits of `value`: the top half of its float32, rounded to nearest even; NaN stays NaN. */
export function toBf16Bits(value: number): number {
  const bits = float32Bits(value);
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0) return ((bits >>> 16) | 0x0040) & 0xffff;
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

export function fromBf16Bits(bits: number): number {
  return float32FromBits((bits & 0xffff) << 16);
}

/** IEEE binary16 bits of `value`, round-to-nearest-even, overflow to infinity, subnormals kept. */
export function toF16Bits(value: number): number {
  const bits = float32Bits(value);
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
  let halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - halfExponent;
    const halfway = 1 << (shift - 1);
    const remainder = mantissa & ((1 << shift) - 1);
    let half = mantissa >>> shift;
    if (remainder > halfway || (remainder === halfway && (half & 1) === 1)) half += 1;
    return sign | half;
  }
  let half = (halfExponent << 10) | (mantissa >>> 13);
  const remainder = mantissa & 0x1fff;
  if (remainder > 0x1000 || (remainder === 0x1000 && (half & 1) === 1)) half += 1; // may carry into the exponent: correct
  return sign | half;
}

export function fromF16Bits(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** Lazily built tables over all 65536 half-precision bit patterns: exact, and far faster per element. */
let f16ToF32: Float32Array | undefined;
let bf16ToF16: Uint16Array | undefined;

/** `bits` (f16 or bf16) as float32 values, into `out` (same length). */
export function halfBitsToFloat32(bits: Uint16Array, kind: "f16" | "bf16", out: Float32Array = new Float32Array(bits.length)): Float32Array {
  if (kind === "bf16") {
    const words = new Uint32Array(out.buffer, out.byteOffset, out.length);
    for (let i = 0; i < bits.length; i++) words[i] = bits[i]! << 16;
    return out;
  }
  f16ToF32 ??= Float32Array.from({ length: 65536 }, (_, i) => fromF16Bits(i));
  for (let i = 0; i < bits.length; i++) out[i] = f16ToF32[bits[i]!]!;
  return out;
}

/** bf16 bit patterns re-rounded to f16 bit patterns (round-to-nearest-even, as toF16Bits). */
export function bf16BitsToF16Bits(bits: Uint16Array, out: Uint16Array = new Uint16Array(bits.length)): Uint16Array {
  bf16ToF16 ??= Uint16Array.from({ length: 65536 }, (_, i) => toF16Bits(fromBf16Bits(i)));
  for (let i = 0; i < bits.length; i++) out[i] = bf16ToF16[bits[i]!]!;
  return out;
}

/** float32 values as f16 bit patterns. */
export function float32ToF16Bits(values: Float32Array, out: Uint16Array = new Uint16Array(values.length)): Uint16Array {
  for (let i = 0; i < values.length; i++) out[i] = toF16Bits(values[i]!);
  return out;
}
