import { B158Error } from "../errors.js";
import { float32FromBits, fromBf16Bits, fromF16Bits } from "./float16.js";
import { describeGranularity, type TensorScale } from "./scales.js";
import type { LatentDtype } from "./ternarize.js";

/**
 * Reading weights a framework uses as stored ("stored" semantics, docs/ternarization.md): float
 * weights that are already exactly t x s (fake-quantized exports such as Ternary-Bonsai unpacked
 * or BitCPM4). The codes are the signs, and the scale is read, never recomputed: re-applying
 * absmean would rescale every weight by the nonzero fraction.
 *
 * The granularity is detected exactly. Weights are looked at in units of 32 along K (K % 32 == 0;
 * otherwise whole rows): every unit must hold at most one nonzero magnitude, or the tensor is not
 * ternary x scale at any granularity and reading it is an error naming it. The result is the
 * coarsest granularity that holds: per tensor, per row, or per group of G = 32 x 2^j weights along K
 * (G dividing K), every group with at most one nonzero magnitude.
 */
export class StoredTernaryReader {
  /** Weights per unit: 32, or K when K is not a multiple of 32. */
  private readonly unit: number;
  /** The one nonzero magnitude (bit pattern) seen in each unit; 0 while none. */
  private readonly magnitudes: Uint32Array;
  private consumed = 0;

  constructor(
    readonly dtype: LatentDtype,
    private readonly shape: readonly [number, number],
    readonly tensorName = "tensor",
  ) {
    const [M, K] = shape;
    this.unit = K % 32 === 0 ? 32 : K;
    this.magnitudes = new Uint32Array((M * K) / this.unit);
  }

  /** Codes of the whole elements of `chunk` at out[offset...] (chunks in order); returns how many. */
  encode(chunk: Uint8Array, out: Int8Array, offset: number): number {
    const f32 = this.dtype === "F32";
    const words = f32 ? view(chunk, Uint32Array) : view(chunk, Uint16Array);
    const magnitudeMask = f32 ? 0x7fffffff : 0x7fff;
    const exponentMask = f32 ? 0x7f800000 : this.dtype === "F16" ? 0x7c00 : 0x7f80;
    const signMask = f32 ? 0x80000000 : 0x8000;
    const unit = this.unit;
    const magnitudes = this.magnitudes;
    let index = this.consumed;
    let i = 0;
    while (i < words.length) {
      const u = Math.floor(index / unit);
      const end = Math.min(words.length, i + unit - (index - u * unit));
      let m = magnitudes[u]!;
      for (; i < end; i++, index++) {
        const w = words[i]!;
        const magnitude = (w & magnitudeMask) >>> 0;
        if (magnitude === 0) {
          out[offset + i] = 0;
          continue;
        }
        if ((w & exponentMask) >>> 0 === exponentMask) throw this.nonFinite(index);
        if (magnitude !== m) {
          if (m !== 0) throw this.notTernary(index, m, magnitude);
          m = magnitude;
        }
        out[offset + i] = (w & signMask) !== 0 ? -1 : 1;
      }
      magnitudes[u] = m;
    }
    this.consumed = index;
    return words.length;
  }

  /** The scale at the coarsest granularity that holds; every element must have been encoded. */
  result(): TensorScale {
    const [M, K] = this.shape;
    if (this.consumed !== M * K) throw new B158Error("E_INTERNAL", `"${this.tensorName}": ${this.consumed} of ${M * K} weights read`);
    const magnitudes = this.magnitudes;
    const single = oneMagnitude(magnitudes, 0, magnitudes.length);
    if (single !== undefined) return this.decode(single);
    for (const G of groupSizes(K, this.unit)) {
      const perGroup = G / this.unit;
      const values = new Float32Array((M * K) / G);
      let holds = true;
      for (let g = 0; g < values.length && holds; g++) {
        const m = oneMagnitude(magnitudes, g * perGroup, (g + 1) * perGroup);
        if (m === undefined) holds = false;
        else values[g] = this.decode(m);
      }
      if (holds) return { groupSize: G, values };
    }
    // unreachable: one unit is the finest group, and encode() refused any unit with two magnitudes
    throw new B158Error("E_INTERNAL", `"${this.tensorName}": no granularity holds`);
  }

  private decode(pattern: number): number {
    return this.dtype === "F32" ? float32FromBits(pattern) : this.dtype === "F16" ? fromF16Bits(pattern) : fromBf16Bits(pattern);
  }

  private notTernary(index: number, a: number, b: number): B158Error {
    const K = this.shape[1];
    const row = Math.floor(index / K);
    const from = Math.floor((index - row * K) / this.unit) * this.unit;
    const where = this.unit === K ? `row ${row}` : `row ${row}, columns ${from}..${from + this.unit - 1}`;
    return new B158Error(
      "E_STORED_NOT_TERNARY",
      `tensor "${this.tensorName}" is read as stored (fake-quantized) weights, but it is not exactly ternary x scale at any granularity: ${where} holds two magnitudes, ${this.decode(a)} and ${this.decode(b)} (the finest granularity checked is ${describeGranularity(this.unit, K)})`,
      {
        hint: "If the framework ternarizes these weights at every forward pass (latent weights), convert with --weights latent; b158 never re-quantizes stored weights silently.",
        details: { tensor: this.tensorName, row, column: index - row * K, magnitudes: [this.decode(a), this.decode(b)] },
      },
    );
  }

  private nonFinite(index: number): B158Error {
    return new B158Error("E_NONFINITE", `tensor "${this.tensorName}" holds NaN or Inf (element ${index}); stored weights must be finite`, {
      hint: "The checkpoint is corrupt: run b158 validate on it, and re-download or re-export it.",
      details: { tensor: this.tensorName, dtype: this.dtype, element: index },
    });
  }
}

/** The single nonzero magnitude of magnitudes[from..to) (0 when all are zero), or undefined when two differ. */
function oneMagnitude(magnitudes: Uint32Array, from: number, to: number): number | undefined {
  let m = 0;
  for (let i = from; i < to; i++) {
    const v = magnitudes[i]!;
    if (v === 0 || v === m) continue;
    if (m !== 0) return undefined;
    m = v;
  }
  return m;
}

/** Candidate group sizes, coarsest first: K (per row), then unit x 2^j dividing K, down to the unit. */
function groupSizes(K: number, unit: number): number[] {
  const sizes = [K];
  const powers: number[] = [];
  for (let G = unit; G < K; G *= 2) if (K % G === 0) powers.push(G);
  return [...sizes, ...powers.reverse()];
}

function view<T extends Uint16Array | Uint32Array>(chunk: Uint8Array, Kind: { new (buffer: ArrayBufferLike, offset: number, length: number): T; BYTES_PER_ELEMENT: number }): T {
  const aligned = chunk.byteOffset % Kind.BYTES_PER_ELEMENT === 0 ? chunk : chunk.slice();
  return new Kind(aligned.buffer, aligned.byteOffset, Math.floor(aligned.byteLength / Kind.BYTES_PER_ELEMENT));
}

/** The whole of an in-memory [M, K] tensor (tests, samples). Streaming callers use the class. */
export function readStored(bytes: Uint8Array, dtype: LatentDtype, shape: readonly [number, number], tensorName = "tensor"): { codes: Int8Array; scale: TensorScale } {
  const reader = new StoredTernaryReader(dtype, shape, tensorName);
  const codes = new Int8Array(shape[0] * shape[1]);
  reader.encode(bytes, codes, 0);
  return { codes, scale: reader.result() };
}
