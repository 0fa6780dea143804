import { B158Error } from "../errors.js";
import { fromBf16Bits, fromF16Bits } from "./float16.js";
import type { WasmKernels } from "./wasm/kernels.js";

/**
 * BitNet b1.58 absmean ternarization of latent weights, per tensor (docs/ternarization.md):
 *
 *   inv   = float32(1 / max(float32(mean|W|), 1e-5))      mean accumulated in float64
 *   t     = clamp(roundHalfToEven(float32(W * inv)), -1, 1)
 *   scale = float32(1 / inv)                               effective weight = scale x t
 *
 * Two streaming passes over raw little-endian chunks, so a tensor never needs a float32 copy of
 * itself: pass 1 (`AbsmeanAccumulator.add`) sums |W|; pass 2 (`TernaryCoder.encode`) writes codes;
 * `TernaryCoder.result()` then gives the scale.
 *
 * This is the rule for "online" semantics (docs/ternarization.md): the framework ternarizes the
 * weights with absmean at every forward pass, whatever their values, so an input that is already
 * exactly ternary x c gets scale c x (nonzero fraction), as it does there. Weights a framework uses
 * as stored ("stored" semantics) are read exactly by stored.ts instead, never through this rule.
 */

export type LatentDtype = "F32" | "F16" | "BF16";

/** transformers' and bitnet.cpp's floor on the mean, so an all-zero tensor gets a finite scale. */
export const ABSMEAN_FLOOR = Math.fround(1e-5);

/**
 * A 16-bit float format's magnitudes as a table: |w| = magnitude[w & 0x7fff], exact in float32
 * (both F16 and BF16 widen to float32 without rounding; Inf and NaN patterns give Inf and NaN).
 * 32768 float32s = 128 KiB, and real weights touch a few hundred entries, so pass 1 costs one
 * load and one add per weight. Built on first use and never written again.
 */
interface HalfFormat {
  readonly decode: (bits: number) => number;
  magnitude(): Float32Array;
}

function halfFormat(decode: (bits: number) => number): HalfFormat {
  let table: Float32Array | undefined;
  return {
    decode,
    magnitude() {
      if (table === undefined) {
        table = new Float32Array(0x8000);
        for (let p = 0; p < 0x8000; p++) table[p] = decode(p);
      }
      return table;
    },
  };
}

const FORMATS = { BF16: halfFormat(fromBf16Bits), F16: halfFormat(fromF16Bits) } as const;

/**
 * Pass 1: feed chunks (whole elements), then ask for the coder. The float sum depends on where
 * chunks start and end, so the streaming converter keeps its chunk size fixed; it may deliver each
 * chunk in pieces (addPiece), which gives the same additions in the same order as add(chunk).
 */
export class AbsmeanAccumulator {
  private sum = 0;
  private count = 0;
  /** The chunk being fed in pieces: its four partial sums, bytes so far. */
  private readonly partial = { a: 0, b: 0, c: 0, d: 0, bytes: 0 };

  /** `kernels`: pieces that lie in their memory are summed in WebAssembly (the same additions, in the same order). */
  constructor(
    readonly dtype: LatentDtype,
    readonly tensorName = "tensor",
    private readonly kernels?: WasmKernels,
  ) {}

  add(chunk: Uint8Array): void {
    this.addPiece(chunk, true);
  }

  /**
   * The next piece of a chunk; `last` ends the chunk. Every piece but the last holds a multiple of
   * 16 bytes, so the four-pair groups below fall exactly where they would in the whole chunk.
   */
  addPiece(piece: Uint8Array, last: boolean): void {
    const p = this.partial;
    if (!last && piece.byteLength % 16 !== 0) throw new B158Error("E_INTERNAL", `pass 1 piece of ${piece.byteLength} bytes is not a multiple of 16`);
    if (this.dtype === "F32") this.sumF32(piece);
    else this.sumHalves(piece, last);
    // NaN and Inf make the sum non-finite: one check per piece instead of one per weight. The
    // partial sums only grow, so the first piece that turns them non-finite holds the culprit.
    if (!Number.isFinite(p.a + p.b + (p.c + p.d))) throw nonFinite(this.tensorName, this.dtype, piece, p.bytes);
    p.bytes += piece.byteLength;
    if (!last) return;
    this.sum += p.a + p.b + (p.c + p.d);
    Object.assign(p, { a: 0, b: 0, c: 0, d: 0, bytes: 0 });
  }

  private sumF32(piece: Uint8Array): void {
    const values = floatView(piece);
    let a = this.partial.a;
    for (let i = 0; i < values.length; i++) a += Math.abs(values[i]!);
    this.count += values.length;
    this.partial.a = a;
  }

  private sumHalves(piece: Uint8Array, last: boolean): void {
    const dtype = this.dtype as "F16" | "BF16";
    const p = this.partial;
    // the whole 16-byte runs in WebAssembly when it can (an F16 Inf/NaN leaves them to TypeScript, which reports it)
    const runs = this.kernels?.holds(piece) === true && this.kernels.absmeanHalves(dtype, piece, p) ? piece.byteLength >>> 4 : 0;
    const words = u16View(piece);
    addHalfMagnitudes(dtype, words, 8 * runs, last, p);
    this.count += words.length;
  }

  /** The absmean scale, and a coder for pass 2 (running in `kernels` where the chunks lie in their memory). */
  coder(kernels?: WasmKernels): TernaryCoder {
    const mean = this.count === 0 ? 0 : Math.fround(this.sum / this.count);
    const inv = Math.fround(1 / Math.max(mean, ABSMEAN_FLOOR));
    return new TernaryCoder(this.dtype, { scale: Math.fround(1 / inv), inv, elements: this.count }, kernels);
  }
}

/**
 * Pass 1's additions over 16-bit weights from `words[from]` on: each run of four pairs (16 bytes)
 * adds pair k's two magnitudes, summed in float64, to partial k (four float64 accumulators break
 * the add-latency chain); with `last`, the elements after the whole runs go to partial a one by
 * one. `from` is a multiple of 8. The WebAssembly kernel (gen-convert.ts) makes the same additions.
 */
export function addHalfMagnitudes(dtype: "F16" | "BF16", words: Uint16Array, from: number, last: boolean, partial: { a: number; b: number; c: number; d: number }): void {
  const table = FORMATS[dtype].magnitude();
  const pairs = pairView(words);
  let { a, b, c, d } = partial;
  const whole = pairs.length - (pairs.length % 4);
  for (let i = from >>> 1; i < whole; i += 4) {
    const w = pairs[i]!;
    const v = pairs[i + 1]!;
    const x = pairs[i + 2]!;
    const y = pairs[i + 3]!;
    a += table[w & 0x7fff]! + table[(w >>> 16) & 0x7fff]!;
    b += table[v & 0x7fff]! + table[(v >>> 16) & 0x7fff]!;
    c += table[x & 0x7fff]! + table[(x >>> 16) & 0x7fff]!;
    d += table[y & 0x7fff]! + table[(y >>> 16) & 0x7fff]!;
  }
  if (last) {
    for (let i = 2 * whole; i < words.length; i++) a += table[words[i]! & 0x7fff]!;
  }
  Object.assign(partial, { a, b, c, d });
}

export interface TernaryScale {
  /** Effective weight = scale x code. */
  readonly scale: number;
  /** The multiplier codes were computed with. */
  readonly inv: number;
  readonly elements: number;
}

/**
 * Pass 2: codes for each chunk. For 16-bit dtypes a code is monotone in the magnitude bits, so one
 * threshold per tensor decides it (|w| pattern > T gives +-1, else 0), found once by bisection with
 * the float rule; a 64 KiB table of code bytes by bit pattern then codes each weight with one load.
 */
export class TernaryCoder {
  /** Largest 15-bit magnitude pattern that codes to 0. */
  private readonly threshold: number;
  /** 16-bit dtypes: the code byte (0, 1 or 0xff for -1) of every bit pattern, from the threshold. */
  private readonly codeTable: Uint8Array;

  constructor(
    readonly dtype: LatentDtype,
    private readonly absmean: TernaryScale,
    private readonly kernels?: WasmKernels,
  ) {
    this.threshold = dtype === "F32" ? 0 : zeroThreshold(FORMATS[dtype].decode, absmean.inv);
    this.codeTable = dtype === "F32" ? new Uint8Array(0) : codeTable(this.threshold);
  }

  /** The absmean scale, known after pass 1 (rows can be packed with it while pass 2 codes). */
  get provisionalScale(): number {
    return this.absmean.scale;
  }

  /** Writes one code per element of `chunk` at out[offset...]; returns how many. */
  encode(chunk: Uint8Array, out: Int8Array, offset: number): number {
    const n = chunk.byteLength / (this.dtype === "F32" ? 4 : 2);
    const target = out.subarray(offset, offset + n);
    if (this.kernels?.holds(chunk, out) === true && target.length === Math.floor(n)) {
      if (this.dtype === "F32") this.kernels.codeF32(chunk, this.absmean.inv, target);
      else this.kernels.codeHalves(chunk, this.threshold, target);
      return target.length;
    }
    if (this.dtype === "F32") {
      const values = floatView(chunk);
      const { inv } = this.absmean;
      for (let i = 0; i < values.length; i++) out[offset + i] = codeOf(Math.fround(values[i]! * inv));
      return values.length;
    }
    const words = u16View(chunk);
    const pairs = pairView(words);
    const table = this.codeTable;
    let i = 0;
    if (offset % 4 === 0 && out.byteOffset % 4 === 0) {
      // Four codes per 32-bit store, each a byte looked up by its 16-bit pattern.
      const quads = pairs.length >>> 1;
      codeQuads(pairs, new Uint32Array(out.buffer, out.byteOffset + offset, quads), table);
      i = 4 * quads;
    }
    for (; i < words.length; i++) out[offset + i] = (table[words[i]!]! << 24) >> 24;
    return words.length;
  }

  /** The tensor's scale (the absmean one: online semantics never keep another). */
  result(): TernaryScale {
    return this.absmean;
  }
}

/** clamp(roundHalfToEven(x), -1, 1): exactly +-0.5 rounds to 0 (even), anything beyond to +-1. */
function codeOf(x: number): -1 | 0 | 1 {
  return x > 0.5 ? 1 : x < -0.5 ? -1 : 0;
}

/** out32[k] = the four code bytes of pairs[2k] and pairs[2k + 1], low element first (little-endian). */
function codeQuads(pairs: Uint32Array, out32: Uint32Array, table: Uint8Array): void {
  for (let k = 0; k < out32.length; k++) {
    const w = pairs[2 * k]!;
    const v = pairs[2 * k + 1]!;
    out32[k] = table[w & 0xffff]! | (table[w >>> 16]! << 8) | (table[v & 0xffff]! << 16) | (table[v >>> 16]! << 24);
  }
}

/** Code bytes by 16-bit pattern: |pattern| <= T codes to 0, above it to +1 (0x01) or -1 (0xff) by the sign bit. */
function codeTable(T: number): Uint8Array {
  const table = new Uint8Array(0x10000);
  table.fill(1, T + 1, 0x8000);
  table.fill(0xff, 0x8000 + T + 1, 0x10000);
  return table;
}

/** Largest finite magnitude pattern p with fround(|p| x inv) <= 0.5 (the rule is monotone in p). */
function zeroThreshold(decode: (bits: number) => number, inv: number): number {
  let low = 0; // codes to 0 (magnitude 0)
  let high = 0x7fff; // search space; Inf/NaN patterns never reach pass 2
  while (low < high) {
    const mid = (low + high + 1) >>> 1;
    const value = decode(mid);
    if (Number.isFinite(value) && codeOf(Math.fround(value * inv)) === 0) low = mid;
    else high = mid - 1;
  }
  return low;
}

/** Both passes over an in-memory tensor (tests, small tensors). Streaming callers use the classes. */
export function ternarize(bytes: Uint8Array, dtype: LatentDtype, tensorName = "tensor"): { codes: Int8Array; scale: TernaryScale } {
  const accumulator = new AbsmeanAccumulator(dtype, tensorName);
  accumulator.add(bytes);
  const coder = accumulator.coder();
  const codes = new Int8Array(bytes.byteLength / (dtype === "F32" ? 4 : 2));
  coder.encode(bytes, codes, 0);
  return { codes, scale: coder.result() };
}

function floatView(chunk: Uint8Array): Float32Array {
  const aligned = chunk.byteOffset % 4 === 0 ? chunk : chunk.slice();
  return new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >>> 2);
}

function u16View(chunk: Uint8Array): Uint16Array {
  const aligned = chunk.byteOffset % 4 === 0 ? chunk : chunk.slice();
  return new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >>> 1);
}

/** Two 16-bit elements per word (the view above is 4-byte aligned). */
function pairView(words: Uint16Array): Uint32Array {
  return new Uint32Array(words.buffer, words.byteOffset, words.length >>> 1);
}

/** `before`: bytes of the same chunk in earlier pieces, so the index counts from the chunk's start. */
function nonFinite(tensorName: string, dtype: LatentDtype, chunk: Uint8Array, before = 0): B158Error {
  let index: number;
  if (dtype === "F32") index = before / 4 + floatView(chunk).findIndex((v) => !Number.isFinite(v));
  else {
    const decode = FORMATS[dtype].decode;
    index = before / 2 + u16View(chunk).findIndex((w) => !Number.isFinite(decode(w)));
  }
  return new B158Error("E_NONFINITE", `tensor "${tensorName}" holds NaN or Inf (element ${index} of a ${dtype} chunk); it cannot be ternarized`, {
    hint: "The checkpoint is corrupt: run b158 validate on it, and re-download or re-export it.",
    details: { tensor: tensorName, dtype },
  });
}
