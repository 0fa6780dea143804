import { B158Error } from "../errors.js";
import { fromBf16Bits, fromF16Bits } from "./float16.js";

/**
 * BitNet b1.58 absmean ternarization of latent weights, per tensor (docs/ternarization.md):
 *
 *   inv   = float32(1 / max(float32(mean|W|), 1e-5))      mean accumulated in float64
 *   t     = clamp(roundHalfToEven(float32(W * inv)), -1, 1)
 *   scale = float32(1 / inv)                               effective weight = scale x t
 *
 * Two streaming passes over raw little-endian chunks (one for the mean, one for the codes), so a
 * tensor never needs a float32 copy of itself. Input that is already exactly ternary x c (a single
 * nonzero magnitude) keeps c as its scale: re-applying absmean would shrink it to c x (nonzero
 * fraction), the rescaling bug of converters that quantize twice.
 */

export type LatentDtype = "F32" | "F16" | "BF16";

/** transformers' and bitnet.cpp's floor on the mean, so an all-zero tensor gets a finite scale. */
export const ABSMEAN_FLOOR = Math.fround(1e-5);

/** |value| for every 16-bit pattern (NaN and Inf included), so pass 1 is one table load per weight. */
const ABS_TABLES = { F16: absTable(fromF16Bits), BF16: absTable(fromBf16Bits) };

function absTable(decode: (bits: number) => number): Float64Array {
  const table = new Float64Array(65536);
  for (let bits = 0; bits < 65536; bits++) table[bits] = Math.abs(decode(bits));
  return table;
}

/** Pass 1: feed chunks, then ask for the scale. Chunks must hold whole elements. */
export class AbsmeanAccumulator {
  private sum = 0;
  private count = 0;
  /** The single nonzero magnitude seen so far: undefined before any, NaN once two differ. */
  private magnitude: number | undefined = undefined;

  constructor(
    readonly dtype: LatentDtype,
    readonly tensorName = "tensor",
  ) {}

  add(chunk: Uint8Array): void {
    const { dtype } = this;
    let sum = 0;
    let magnitude = this.magnitude;
    if (dtype === "F32") {
      const values = floatView(chunk);
      for (let i = 0; i < values.length; i++) {
        const a = Math.abs(values[i]!);
        sum += a;
        if (a !== 0 && a !== magnitude) magnitude = magnitude === undefined ? a : NaN;
      }
      this.count += values.length;
    } else {
      const words = u16View(chunk);
      const table = ABS_TABLES[dtype];
      for (let i = 0; i < words.length; i++) {
        const a = table[words[i]!]!;
        sum += a;
        if (a !== 0 && a !== magnitude) magnitude = magnitude === undefined ? a : NaN;
      }
      this.count += words.length;
    }
    // NaN and Inf make the sum non-finite: one check per chunk instead of one per weight.
    if (!Number.isFinite(sum)) throw nonFinite(this.tensorName, dtype, chunk);
    this.sum += sum;
    this.magnitude = magnitude;
  }

  /** The per-tensor scale and its inverse, both float32 values. */
  result(): TernaryScale {
    const alreadyTernary = this.magnitude !== undefined && !Number.isNaN(this.magnitude);
    if (alreadyTernary) {
      const scale = Math.fround(this.magnitude!);
      return { scale, inv: Math.fround(1 / scale), alreadyTernary, elements: this.count };
    }
    const mean = this.count === 0 ? 0 : Math.fround(this.sum / this.count);
    const inv = Math.fround(1 / Math.max(mean, ABSMEAN_FLOOR));
    return { scale: Math.fround(1 / inv), inv, alreadyTernary: false, elements: this.count };
  }
}

export interface TernaryScale {
  /** Effective weight = scale x code. */
  readonly scale: number;
  /** The multiplier codes are computed with. */
  readonly inv: number;
  /** True when the input was exactly code x scale, so the scale is that magnitude, not absmean. */
  readonly alreadyTernary: boolean;
  readonly elements: number;
}

/**
 * Pass 2: codes for one chunk, written at `out[offset...]`. Returns the number of codes written.
 * For 16-bit dtypes the code of every bit pattern is computed once per tensor (65536 entries).
 */
export class TernaryCoder {
  private readonly table: Int8Array | undefined;

  constructor(
    readonly dtype: LatentDtype,
    private readonly scale: TernaryScale,
  ) {
    if (dtype !== "F32") {
      const decode = dtype === "F16" ? fromF16Bits : fromBf16Bits;
      const table = new Int8Array(65536);
      for (let bits = 0; bits < 65536; bits++) table[bits] = code(decode(bits), scale);
      this.table = table;
    }
  }

  encode(chunk: Uint8Array, out: Int8Array, offset: number): number {
    if (this.table === undefined) {
      const values = floatView(chunk);
      const { inv } = this.scale;
      const exact = this.scale.alreadyTernary;
      for (let i = 0; i < values.length; i++) {
        const w = values[i]!;
        out[offset + i] = exact ? (w > 0 ? 1 : w < 0 ? -1 : 0) : codeOf(Math.fround(w * inv));
      }
      return values.length;
    }
    const words = u16View(chunk);
    const table = this.table;
    for (let i = 0; i < words.length; i++) out[offset + i] = table[words[i]!]!;
    return words.length;
  }
}

/** clamp(roundHalfToEven(x), -1, 1): exactly +-0.5 rounds to 0 (even), anything beyond to +-1. */
function codeOf(x: number): -1 | 0 | 1 {
  return x > 0.5 ? 1 : x < -0.5 ? -1 : 0;
}

function code(w: number, scale: TernaryScale): number {
  if (!Number.isFinite(w)) return 0; // never reached: pass 1 rejects non-finite input
  if (scale.alreadyTernary) return w > 0 ? 1 : w < 0 ? -1 : 0;
  return codeOf(Math.fround(w * scale.inv));
}

/** Both passes over an in-memory tensor (tests, small tensors). Streaming callers use the classes. */
export function ternarize(bytes: Uint8Array, dtype: LatentDtype, tensorName = "tensor"): { codes: Int8Array; scale: TernaryScale } {
  const accumulator = new AbsmeanAccumulator(dtype, tensorName);
  accumulator.add(bytes);
  const scale = accumulator.result();
  const codes = new Int8Array(scale.elements);
  new TernaryCoder(dtype, scale).encode(bytes, codes, 0);
  return { codes, scale };
}

function floatView(chunk: Uint8Array): Float32Array {
  const aligned = chunk.byteOffset % 4 === 0 ? chunk : chunk.slice();
  return new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >>> 2);
}

function u16View(chunk: Uint8Array): Uint16Array {
  const aligned = chunk.byteOffset % 2 === 0 ? chunk : chunk.slice();
  return new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >>> 1);
}

function nonFinite(tensorName: string, dtype: LatentDtype, chunk: Uint8Array): B158Error {
  let index = -1;
  if (dtype === "F32") index = floatView(chunk).findIndex((v) => !Number.isFinite(v));
  else {
    const table = ABS_TABLES[dtype];
    index = u16View(chunk).findIndex((w) => !Number.isFinite(table[w]!));
  }
  return new B158Error("E_NONFINITE", `tensor "${tensorName}" holds NaN or Inf (element ${index} of a ${dtype} chunk); it cannot be ternarized`, {
    hint: "The checkpoint is corrupt: run b158 validate on it, and re-download or re-export it.",
    details: { tensor: tensorName, dtype },
  });
}
