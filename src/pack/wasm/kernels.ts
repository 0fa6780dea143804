import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { B158Error } from "../../errors.js";
import { tl1TilingProblem, tl2RegionBytes, tl2TilingProblem, type Tiling } from "../layouts.js";

/**
 * The converter's WebAssembly kernels (gen-convert.ts, built to dist/pack/wasm/convert-simd128.wasm
 * by `npm run build`) and the memory they work in. A conversion task takes an `Arena` for its
 * buffers: views into one instance's memory when the module is there, plain memory otherwise.
 * Callers pass views; a kernel runs in WebAssembly only when all its views lie in its arena's
 * memory, and the TypeScript functions in src/pack (which give the same bytes) run otherwise.
 * B158_CONVERT_KERNELS=ts turns the module off (the TypeScript path everywhere).
 */

/** Next to this file once compiled; from the TypeScript sources (tests, the bench) in dist/. */
const CANDIDATES = ["./", "../../../dist/pack/wasm/"];

let compiled: WebAssembly.Module | null | undefined;

function convertModule(): WebAssembly.Module | undefined {
  if (compiled === undefined) {
    compiled = null;
    if (process.env.B158_CONVERT_KERNELS !== "ts") {
      for (const dir of CANDIDATES) {
        try {
          compiled = new WebAssembly.Module(readFileSync(fileURLToPath(new URL(`${dir}convert-simd128.wasm`, import.meta.url))));
          break;
        } catch {
          // not built there (or this engine lacks SIMD128): try the next place
        }
      }
    }
  }
  return compiled ?? undefined;
}

/** Whether the kernels run in WebAssembly in this process ("ts": the module is off or missing). */
export function convertKernelsKind(): "wasm-simd128" | "ts" {
  return convertModule() === undefined ? "ts" : "wasm-simd128";
}

interface Exports {
  readonly memory: WebAssembly.Memory;
  absmean_bf16(src: number, groups: number, acc: number): number;
  absmean_f16(src: number, groups: number, acc: number): number;
  /** Pass 2 for 16-bit floats (ternarize.ts, TernaryCoder): the runtime's threshold_codes, the same rule. */
  threshold_codes(src: number, n: number, threshold: number, dst: number): void;
  code_f32(src: number, n: number, inv: number, dst: number): void;
  pack_i2s_128(codes: number, n: number, dst: number): number;
  pack_i2s_64(codes: number, n: number, dst: number): number;
  check_i2s_128(payload: number, codes: number, n: number): number;
  check_i2s_64(payload: number, codes: number, n: number): number;
  pack_tq2_0(codes: number, blocks: number, dst: number, d: number): number;
  check_tq2_0(payload: number, codes: number, blocks: number): number;
  pack_tq1_0(codes: number, blocks: number, dst: number, d: number): number;
  check_tq1_0(payload: number, codes: number, blocks: number): number;
  pack_q2_0(codes: number, blocks: number, dst: number, d: number): number;
  check_q2_0(payload: number, codes: number, blocks: number): number;
  pack_tl1(codes: number, rows: number, K: number, BM: number, BK: number, bm: number, out: number): number;
  check_tl1(payload: number, codes: number, rows: number, K: number, BM: number, BK: number, bm: number): number;
  pack_tl2(codes: number, rows: number, K: number, BM: number, BK: number, regionA: number, regionS: number, regionB: number): number;
  check_tl2(regionA: number, regionS: number, regionB: number, codes: number, rows: number, K: number, BM: number, BK: number): number;
  nonfinite_halves(src: number, n: number, mask: number): number;
  nonfinite_f32(src: number, n: number): number;
  unpack_hf_row(src: number, n: number, shift: number, dst: number): number;
  xxh64_stripes(state: number, src: number, stripes: number): void;
}

/** What a decode-check kernel found (kernels return them as bits 0, 1, 2). */
export interface CheckFlags {
  /** The payload holds a code outside the alphabet (decoding it would throw E_PACKED_CODE). */
  readonly invalid: boolean;
  /** Decoding it gives other codes than those compared with. */
  readonly differs: boolean;
  /** Some code compared with is not 0. */
  readonly nonzero: boolean;
}

const ALIGN = 64;
/** Bytes at the start of every arena for the kernels' small results (absmean partial sums). */
const HEAD = 64;
/** Where in the head XXH64's accumulators go during a call (absmean's sums use the first 32 bytes). */
const XXH64_STATE = 32;
const PAGE = 65536;

/** The WebAssembly kernels bound to one instance's memory; every method wants views of that memory. */
export class WasmKernels {
  constructor(private readonly x: Exports) {}

  /** Whether every view lies in this instance's memory (then the kernels can take them). */
  holds(...views: readonly ArrayBufferView[]): boolean {
    const buffer = this.x.memory.buffer;
    return views.every((v) => v.buffer === buffer);
  }

  /**
   * Pass 1 of absmean over 16-bit floats: the whole 16-byte runs of `piece` added to the partial
   * sums (a, b, c, d). False, with the sums untouched, when an F16 weight is Inf or NaN.
   */
  absmeanHalves(dtype: "BF16" | "F16", piece: Uint8Array, partial: { a: number; b: number; c: number; d: number }): boolean {
    const acc = new Float64Array(this.x.memory.buffer, 0, 4);
    acc.set([partial.a, partial.b, partial.c, partial.d]);
    const special = (dtype === "BF16" ? this.x.absmean_bf16 : this.x.absmean_f16)(piece.byteOffset, piece.byteLength >>> 4, 0);
    if (special !== 0) return false;
    partial.a = acc[0]!;
    partial.b = acc[1]!;
    partial.c = acc[2]!;
    partial.d = acc[3]!;
    return true;
  }

  /** Codes of the 16-bit weights in `chunk` (pattern above `threshold`: the sign's +-1, else 0). */
  codeHalves(chunk: Uint8Array, threshold: number, out: Int8Array): void {
    this.x.threshold_codes(chunk.byteOffset, chunk.byteLength >>> 1, threshold, out.byteOffset);
  }

  codeF32(chunk: Uint8Array, inv: number, out: Int8Array): void {
    this.x.code_f32(chunk.byteOffset, chunk.byteLength >>> 2, inv, out.byteOffset);
  }

  /** Packs codes into `out` (see gen-convert.ts); false when a code is not ternary. */
  packI2s(codes: Int8Array, blockSize: 128 | 64, out: Uint8Array): boolean {
    return (blockSize === 128 ? this.x.pack_i2s_128 : this.x.pack_i2s_64)(codes.byteOffset, codes.length, out.byteOffset) === 0;
  }

  checkI2s(payload: Uint8Array, codes: Int8Array, blockSize: 128 | 64): CheckFlags {
    return flags((blockSize === 128 ? this.x.check_i2s_128 : this.x.check_i2s_64)(payload.byteOffset, codes.byteOffset, codes.length));
  }

  packTq2_0(codes: Int8Array, d: number, out: Uint8Array): boolean {
    return this.x.pack_tq2_0(codes.byteOffset, codes.length >>> 8, out.byteOffset, d) === 0;
  }

  checkTq2_0(payload: Uint8Array, codes: Int8Array): CheckFlags {
    return flags(this.x.check_tq2_0(payload.byteOffset, codes.byteOffset, codes.length >>> 8));
  }

  packTq1_0(codes: Int8Array, d: number, out: Uint8Array): boolean {
    return this.x.pack_tq1_0(codes.byteOffset, codes.length >>> 8, out.byteOffset, d) === 0;
  }

  checkTq1_0(payload: Uint8Array, codes: Int8Array): CheckFlags {
    return flags(this.x.check_tq1_0(payload.byteOffset, codes.byteOffset, codes.length >>> 8));
  }

  packQ2_0(codes: Int8Array, d: number, out: Uint8Array): boolean {
    return this.x.pack_q2_0(codes.byteOffset, codes.length >>> 6, out.byteOffset, d) === 0;
  }

  checkQ2_0(payload: Uint8Array, codes: Int8Array): CheckFlags {
    return flags(this.x.check_q2_0(payload.byteOffset, codes.byteOffset, codes.length >>> 6));
  }

  /**
   * TL1 of whole BM-row tiles: `codes` ([rows, K]) to `out`, rows x K / 4 bytes. The tiling must fit
   * [rows, K] (tl1TilingProblem): the kernel trusts it, so a misfit is refused here.
   */
  packTl1(codes: Int8Array, K: number, tiling: Tiling, out: Uint8Array): boolean {
    const rows = fitTiles("tl1", codes, K, tiling, [out], [codes.length / 4]);
    return this.x.pack_tl1(codes.byteOffset, rows, K, tiling.BM, tiling.BK, tiling.bm, out.byteOffset) === 0;
  }

  checkTl1(payload: Uint8Array, codes: Int8Array, K: number, tiling: Tiling): CheckFlags {
    const rows = fitTiles("tl1", codes, K, tiling, [payload], [codes.length / 4]);
    return flags(this.x.check_tl1(payload.byteOffset, codes.byteOffset, rows, K, tiling.BM, tiling.BK, tiling.bm));
  }

  /** TL2 of whole BM-row tiles into its three regions for those rows (the magnitudes, the signs, the tail: each a slice of the payload). */
  packTl2(codes: Int8Array, K: number, tiling: Tiling, out: Tl2Regions): boolean {
    const rows = fitTiles("tl2", codes, K, tiling, out, tl2RegionBytes(codes.length / K, K, tiling));
    return this.x.pack_tl2(codes.byteOffset, rows, K, tiling.BM, tiling.BK, out[0].byteOffset, out[1].byteOffset, out[2].byteOffset) === 0;
  }

  checkTl2(payload: Tl2Regions, codes: Int8Array, K: number, tiling: Tiling): CheckFlags {
    const rows = fitTiles("tl2", codes, K, tiling, payload, tl2RegionBytes(codes.length / K, K, tiling));
    return flags(this.x.check_tl2(payload[0].byteOffset, payload[1].byteOffset, payload[2].byteOffset, codes.byteOffset, rows, K, tiling.BM, tiling.BK));
  }

  /** NaN/Inf among whole elements of `bytes`. */
  nonFinite(bytes: Uint8Array, layout: "f32" | "f16" | "bf16"): number {
    if (layout === "f32") return this.x.nonfinite_f32(bytes.byteOffset, bytes.byteLength >>> 2);
    return this.x.nonfinite_halves(bytes.byteOffset, bytes.byteLength >>> 1, layout === "bf16" ? 0x7f80 : 0x7c00);
  }

  /** Adds the whole 32-byte stripes of `bytes` to XXH64's accumulators `acc` (xxh64.ts, xxh64Stripes). */
  xxh64Stripes(acc: BigUint64Array, bytes: Uint8Array): void {
    const state = new BigUint64Array(this.x.memory.buffer, XXH64_STATE, 4);
    state.set(acc);
    this.x.xxh64_stripes(XXH64_STATE, bytes.byteOffset, bytes.byteLength >>> 5);
    acc.set(new BigUint64Array(this.x.memory.buffer, XXH64_STATE, 4));
  }

  /** Field `shift` of each byte of one packed row as codes; false when one is 3. */
  unpackHfRow(row: Uint8Array, shift: number, out: Int8Array): boolean {
    return this.x.unpack_hf_row(row.byteOffset, row.byteLength, shift, out.byteOffset) === 0;
  }
}

/** TL2's regions of a range of rows: the triplet magnitudes (A), the sign words (S), the tail (B). */
export type Tl2Regions = readonly [magnitudes: Uint8Array, signs: Uint8Array, tail: Uint8Array];

/** The rows of `codes` when the tiling fits them and the views have the sizes given; else E_INTERNAL (a kernel would write elsewhere). */
function fitTiles(layout: "tl1" | "tl2", codes: Int8Array, K: number, tiling: Tiling, views: readonly Uint8Array[], sizes: readonly number[]): number {
  const rows = codes.length / K;
  const problem = Number.isInteger(rows) ? (layout === "tl1" ? tl1TilingProblem : tl2TilingProblem)(rows, K, tiling) : `${codes.length} codes are not rows of ${K}`;
  if (problem === undefined && views.every((v, i) => v.byteLength === sizes[i])) return rows;
  throw new B158Error("E_INTERNAL", `${layout} kernel: ${problem ?? `views of ${views.map((v) => v.byteLength).join(", ")} bytes for ${sizes.join(", ")}`}`, { details: { layout, rows, K, ...tiling } });
}

function flags(bits: number): CheckFlags {
  return { invalid: (bits & 1) !== 0, differs: (bits & 2) !== 0, nonzero: (bits & 4) !== 0 };
}

/**
 * One task's memory: `carve` cuts views of the sizes asked (each 64-byte aligned), valid until the
 * next carve, which may grow the memory (detaching the old views). With the module, they lie in an
 * instance's memory and `kernels` runs on them; without, they are plain memory and `kernels` is
 * undefined. Contents are left over from earlier tasks: callers overwrite what they use.
 */
export class Arena {
  private plain: ArrayBuffer | undefined;

  private constructor(readonly kernels: WasmKernels | undefined, private readonly memory: WebAssembly.Memory | undefined) {}

  /** An arena of plain memory: the TypeScript path (the fallback, for tests). */
  static plain(): Arena {
    return new Arena(undefined, undefined);
  }

  static create(): Arena {
    const module = convertModule();
    if (module === undefined) return new Arena(undefined, undefined);
    const exports = new WebAssembly.Instance(module, {}).exports as unknown as Exports;
    return new Arena(new WasmKernels(exports), exports.memory);
  }

  carve(...sizes: readonly number[]): Uint8Array[] {
    const offsets: number[] = [];
    let end = this.memory === undefined ? 0 : HEAD;
    for (const size of sizes) {
      offsets.push(end);
      end = Math.ceil((end + size) / ALIGN) * ALIGN;
    }
    const buffer = this.reserve(end);
    return sizes.map((size, i) => new Uint8Array(buffer, offsets[i]!, size));
  }

  private reserve(bytes: number): ArrayBuffer {
    if (this.memory !== undefined) {
      const have = this.memory.buffer.byteLength;
      if (bytes > have) this.memory.grow(Math.ceil((bytes - have) / PAGE));
      return this.memory.buffer as ArrayBuffer;
    }
    if (this.plain === undefined || this.plain.byteLength < bytes) this.plain = new ArrayBuffer(bytes);
    return this.plain;
  }
}

/**
 * This thread's arenas: a worker runs one task at a time and gets the same arena (and memory) back
 * each time; tasks running concurrently inline each take their own.
 */
const free: Arena[] = [];
const KEEP = 2;

export function takeArena(): Arena {
  return free.pop() ?? Arena.create();
}

export function returnArena(arena: Arena): void {
  if (free.length < KEEP) free.push(arena);
}
