import { B158Error } from "../errors.js";
import { fromBf16Bits, fromF16Bits, toBf16Bits, toF16Bits } from "../pack/float16.js";
import { applyScale, type TensorScale } from "../pack/scales.js";

/** Float dtypes a tensor can be written as (lower-case, as .b158 layouts name them). */
export type FloatLayout = "f32" | "f16" | "bf16";

const SOURCE: Record<string, FloatLayout | "f64"> = { F32: "f32", F16: "f16", BF16: "bf16", F64: "f64" };

/** Re-encodes a chunk of little-endian floats; bf16 -> f32 and f16 -> f32 are exact, narrowing rounds to nearest even. */
export function convertFloats(chunk: Uint8Array, sourceDtype: string, target: FloatLayout): Uint8Array {
  const from = SOURCE[sourceDtype];
  if (from === undefined) throw new B158Error("E_INTERNAL", `cannot convert ${sourceDtype} to ${target}`);
  if (from === target) return chunk;
  const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  const size = from === "f64" ? 8 : from === "f32" ? 4 : 2;
  const n = chunk.byteLength / size;
  const read = (i: number): number =>
    from === "f64" ? view.getFloat64(i * 8, true) : from === "f32" ? view.getFloat32(i * 4, true) : from === "f16" ? fromF16Bits(view.getUint16(i * 2, true)) : fromBf16Bits(view.getUint16(i * 2, true));
  if (target === "f32") {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = read(i);
    return new Uint8Array(out.buffer);
  }
  const out = new Uint16Array(n);
  const encode = target === "f16" ? toF16Bits : toBf16Bits;
  for (let i = 0; i < n; i++) out[i] = encode(read(i));
  return new Uint8Array(out.buffer);
}

/** scale x code as `target` floats (the --fallback payload of an ineligible ternary tensor). */
export function dequantize(codes: Int8Array, scale: TensorScale, target: FloatLayout, K = codes.length): Uint8Array {
  if (typeof scale !== "number") {
    // per-group scales: each weight times its group's scale, then the target dtype
    const values = applyScale(codes, K, scale);
    if (target === "f32") return new Uint8Array(values.buffer);
    const encode = target === "f16" ? toF16Bits : toBf16Bits;
    return new Uint8Array(Uint16Array.from(values, encode).buffer);
  }
  if (target === "f32") return new Uint8Array(Float32Array.from(codes, (c) => c * scale).buffer);
  const encode = target === "f16" ? toF16Bits : toBf16Bits;
  const plus = encode(scale);
  const minus = encode(-scale);
  return new Uint8Array(Uint16Array.from(codes, (c) => (c === 0 ? 0 : c > 0 ? plus : minus)).buffer);
}
