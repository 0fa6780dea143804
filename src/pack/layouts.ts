/**
 * The six ternary layouts b158 writes, their shape and scale rules, tilings and exact payload sizes.
 * Shapes are [M, K] = [out_features, in_features], as nn.Linear stores them (ggml ne0 = K).
 * Byte layouts: docs/layouts.md (from bitnet.cpp's quantizer and converter for I2_S, TL1, TL2, and
 * ggml's ggml-quants.c for TQ1_0, TQ2_0, Q2_0). This module is pure: no I/O.
 */

import { B158Error } from "../errors.js";

export const LAYOUT_IDS = ["i2_s", "tl1", "tl2", "tq1_0", "tq2_0", "q2_0"] as const;
export type LayoutId = (typeof LAYOUT_IDS)[number];

export function isLayoutId(value: unknown): value is LayoutId {
  return typeof value === "string" && (LAYOUT_IDS as readonly string[]).includes(value);
}

/** A layout name as people write it ("TQ2_0" as llama-quantize takes it, or "tq2_0"); anything else is E_LAYOUT_UNKNOWN. */
export function parseLayoutId(value: unknown): LayoutId {
  const lower = typeof value === "string" ? value.toLowerCase() : value;
  if (isLayoutId(lower)) return lower;
  throw new B158Error("E_LAYOUT_UNKNOWN", `layout ${JSON.stringify(value)} is not one b158 writes: ${LAYOUT_IDS.join(", ")}`, {
    hint: `Choose one of ${LAYOUT_IDS.join(", ")} (docs/layouts.md compares them).`,
    details: { layout: value, layouts: LAYOUT_IDS },
  });
}

/** Where a TL tiling came from: bitnet.cpp's codegen presets, our rule, or the user's kernel_config.ini. */
export type TilingSource = "preset" | "computed" | "kernel-config";

export interface Tiling {
  /** Row tile (kernel_config.ini `bm`). */
  readonly BM: number;
  /** Column tile (kernel_config.ini `bk`). */
  readonly BK: number;
  /** SIMD sub-tile (kernel_config.ini `bmm`). */
  readonly bm: number;
}

export type LayoutParams =
  | { readonly layout: "i2_s"; readonly blockSize: 128 | 64; readonly variant: "x86" | "arm" }
  | ({ readonly layout: "tl1" | "tl2"; readonly tilingSource: TilingSource } & Tiling)
  | { readonly layout: "tq1_0" | "tq2_0"; readonly blockSize: 256 }
  | { readonly layout: "q2_0"; readonly blockSize: 64 };

/**
 * payloadBytes is exactly what the packer returns for the shape: for I2_S the codes + f32 scale +
 * 28 zero bytes, for TQ the blocks (f16 d inside each), for TL1/TL2 the weight bytes only (TL2
 * including its zero padding to P): their f32 scale is stored separately, as bitnet.cpp does.
 */
export type Eligibility =
  | { readonly eligible: true; readonly params: LayoutParams; readonly payloadBytes: number; readonly bitsPerWeight: number }
  | { readonly eligible: false; readonly rule: string; readonly reason: string };

export interface EligibilityOptions {
  /** I2_S block variant: "x86" (128 elements, the official layout; default) or "arm" (64, ARM builds since Nov 2025). */
  readonly i2sVariant?: "x86" | "arm";
  /** An explicit TL1/TL2 tiling (from --kernel-config); otherwise presets, then the computed rule. */
  readonly tiling?: Tiling;
  /** The tensor's scales are per group of this many weights along K (K: per row); absent: one per tensor. */
  readonly groupSize?: number;
}

/** Block geometry, written as arithmetic so the sizes document themselves (ggml-common.h). */
export const TQ_BLOCK = 256;
export const TQ2_0_BLOCK_BYTES = TQ_BLOCK / 4 + 2; // qs[64] + f16 d
export const TQ1_0_BLOCK_BYTES = (TQ_BLOCK - 16) / 5 + 4 + 2; // qs[48] + qh[4] + f16 d
/** Mainline llama.cpp Q2_0 (ggml-common.h block_q2_0): f16 d + qs[16], 64 weights. */
export const Q2_0_BLOCK = 64;
export const Q2_0_BLOCK_BYTES = 2 + Q2_0_BLOCK / 4;
/** Weights per block whose own f16 d a layout stores (so group scales of a multiple of it fit); absent: one scale per tensor. */
export const SCALE_BLOCK: Readonly<Partial<Record<LayoutId, number>>> = { tq1_0: TQ_BLOCK, tq2_0: TQ_BLOCK, q2_0: Q2_0_BLOCK };
/** I2_S tail: f32 scale + 28 bytes of padding (bitnet.cpp's ggml_nbytes adds 32). */
export const I2_S_TAIL_BYTES = 32;
/** bitnet.cpp's I2_S kernels index elements with a 32-bit int. */
export const I2_S_MAX_ELEMENTS = 2 ** 31 - 1;

/**
 * bitnet.cpp codegen tilings (setup_env.py; reference §2.2), keyed "M,K". These are what the
 * shipped kernels were generated for, so a tensor of one of these shapes gets them.
 */
const TL1_PRESETS: Readonly<Record<string, Tiling>> = {
  "1536,4096": { BM: 256, BK: 128, bm: 32 },
  "1536,1536": { BM: 128, BK: 64, bm: 64 },
  "4096,1536": { BM: 256, BK: 128, bm: 32 },
  "3200,8640": { BM: 160, BK: 64, bm: 32 },
  "3200,3200": { BM: 320, BK: 128, bm: 64 },
  "8640,3200": { BM: 320, BK: 64, bm: 32 },
  "14336,4096": { BM: 256, BK: 128, bm: 32 },
  "4096,14336": { BM: 128, BK: 64, bm: 64 },
  "1024,4096": { BM: 256, BK: 128, bm: 32 },
  "4096,4096": { BM: 128, BK: 64, bm: 64 },
};
const TL2_PRESETS: Readonly<Record<string, Tiling>> = {
  "1536,4096": { BM: 256, BK: 96, bm: 32 },
  "1536,1536": { BM: 128, BK: 192, bm: 32 },
  "4096,1536": { BM: 256, BK: 96, bm: 32 },
  "3200,8640": { BM: 160, BK: 96, bm: 32 },
  "3200,3200": { BM: 320, BK: 96, bm: 32 },
  "8640,3200": { BM: 320, BK: 96, bm: 32 },
  "14336,4096": { BM: 256, BK: 96, bm: 32 },
  "4096,14336": { BM: 128, BK: 96, bm: 32 },
  "1024,4096": { BM: 256, BK: 96, bm: 32 },
  "4096,4096": { BM: 128, BK: 96, bm: 32 },
};

const no = (rule: string, reason: string): Eligibility => ({ eligible: false, rule, reason });
const yes = (params: LayoutParams, payloadBytes: number, weights: number): Eligibility => ({
  eligible: true,
  params,
  payloadBytes,
  bitsPerWeight: (payloadBytes * 8) / weights,
});

/** Whether `layout` can hold a [M, K] ternary matrix, with its parameters and exact payload size. Never throws. */
export function checkEligibility(layout: LayoutId, shape: readonly [number, number], options: EligibilityOptions = {}): Eligibility {
  const [M, K] = shape;
  if (!(Number.isSafeInteger(M) && Number.isSafeInteger(K) && M > 0 && K > 0)) return no("M > 0 and K > 0", `shape [${M}, ${K}] is empty`);
  const fit = shapeEligibility(layout, M, K, options);
  if (!fit.eligible || options.groupSize === undefined) return fit;
  return scaleEligibility(layout, K, options.groupSize) ?? fit;
}

/** Why `layout` cannot hold scales per group of `groupSize` along K exactly, or undefined when it can. */
export function scaleEligibility(layout: LayoutId, K: number, groupSize: number): Eligibility | undefined {
  const block = SCALE_BLOCK[layout];
  const granularity = groupSize === K ? `a scale per row (K = ${K})` : `a scale per group of ${groupSize} weights`;
  if (block === undefined) return no("one scale per tensor", `the tensor has ${granularity}; ${layout} holds one scale per tensor`);
  if (groupSize % block !== 0) return no(`G % ${block} == 0`, `the tensor has ${granularity}; ${layout} holds one scale per ${block}-weight block`);
  return undefined;
}

function shapeEligibility(layout: LayoutId, M: number, K: number, options: EligibilityOptions): Eligibility {
  switch (layout) {
    case "i2_s": {
      const variant = options.i2sVariant ?? "x86";
      const blockSize = variant === "arm" ? 64 : 128;
      if (K % blockSize !== 0) return no(`K % ${blockSize} == 0`, `K = ${K} is not a multiple of ${blockSize}`);
      if (M * K > I2_S_MAX_ELEMENTS) return no("M x K < 2^31", `${M * K} elements overflow the kernels' 32-bit index`);
      return yes({ layout, blockSize, variant }, (M * K) / 4 + I2_S_TAIL_BYTES, M * K);
    }
    case "tq1_0":
    case "tq2_0": {
      if (K % TQ_BLOCK !== 0) return no(`K % ${TQ_BLOCK} == 0`, `K = ${K} is not a multiple of ${TQ_BLOCK}`);
      const blockBytes = layout === "tq2_0" ? TQ2_0_BLOCK_BYTES : TQ1_0_BLOCK_BYTES;
      return yes({ layout, blockSize: TQ_BLOCK }, ((M * K) / TQ_BLOCK) * blockBytes, M * K);
    }
    case "q2_0":
      if (K % Q2_0_BLOCK !== 0) return no(`K % ${Q2_0_BLOCK} == 0`, `K = ${K} is not a multiple of ${Q2_0_BLOCK}`);
      return yes({ layout, blockSize: Q2_0_BLOCK }, ((M * K) / Q2_0_BLOCK) * Q2_0_BLOCK_BYTES, M * K);
    case "tl1":
      return tl1Eligibility(M, K, options.tiling);
    case "tl2":
      return tl2Eligibility(M, K, options.tiling);
  }
}

/** TL1 rules (reference §2.2): M % BM == 0, K % BK == 0, bm in {32, 64}, BM % bm == 0, BK % (256 / bm) == 0. */
export function tl1TilingProblem(M: number, K: number, t: Tiling): string | undefined {
  if (t.bm !== 32 && t.bm !== 64) return `bm = ${t.bm} is not 32 or 64`;
  const by = 256 / t.bm;
  if (t.BM <= 0 || t.BM % t.bm !== 0) return `BM = ${t.BM} is not a positive multiple of bm = ${t.bm}`;
  if (t.BK <= 0 || t.BK % by !== 0) return `BK = ${t.BK} is not a positive multiple of 256 / bm = ${by}`;
  if (M % t.BM !== 0) return `M = ${M} is not a multiple of BM = ${t.BM}`;
  if (K % t.BK !== 0) return `K = ${K} is not a multiple of BK = ${t.BK}`;
  return undefined;
}

/**
 * The computed TL1 tiling: bm = 32 (by = 8), BM = the largest multiple of 32 up to 256 dividing M,
 * BK = the largest multiple of 8 up to 128 dividing K. Largest tiles within the presets' range keep
 * the LUT work per tile like the shipped kernels'.
 */
export function computeTl1Tiling(M: number, K: number): Tiling | undefined {
  const BM = largestDivisor(M, 32, 256);
  const BK = largestDivisor(K, 8, 128);
  return BM === undefined || BK === undefined ? undefined : { BM, BK, bm: 32 };
}

function tl1Eligibility(M: number, K: number, explicit: Tiling | undefined): Eligibility {
  const preset = TL1_PRESETS[`${M},${K}`];
  const tiling = explicit ?? preset ?? computeTl1Tiling(M, K);
  const source: TilingSource = explicit ? "kernel-config" : preset ? "preset" : "computed";
  if (tiling === undefined) {
    return no("M % 32 == 0 and K % 8 == 0", M % 32 !== 0 ? `M = ${M} is not a multiple of 32` : `K = ${K} is not a multiple of 8`);
  }
  const problem = tl1TilingProblem(M, K, tiling);
  if (problem !== undefined) return no(`tiling BM ${tiling.BM} / BK ${tiling.BK} / bm ${tiling.bm} fits the shape`, problem);
  return yes({ layout: "tl1", tilingSource: source, ...tiling }, (M * K) / 4, M * K);
}

/** TL2 rules (reference §2.2): bm == 32, BK % 24 == 0, BM % 32 == 0, M % BM == 0, K % BK a multiple of 32 and <= 256, K >= 256. */
export function tl2TilingProblem(M: number, K: number, t: Tiling): string | undefined {
  if (t.bm !== 32) return `bm = ${t.bm} is not 32 (TL2 kernels use 32)`;
  if (t.BM <= 0 || t.BM % 32 !== 0) return `BM = ${t.BM} is not a positive multiple of 32`;
  if (t.BK <= 0 || t.BK % 24 !== 0) return `BK = ${t.BK} is not a positive multiple of 24`;
  if (M % t.BM !== 0) return `M = ${M} is not a multiple of BM = ${t.BM}`;
  // The kernels' padding formula hard-codes "the last 256 columns": it needs K >= 256 and a tail <= 256.
  if (K < 256) return `K = ${K} is below 256`;
  const tail = K % t.BK;
  if (tail % 32 !== 0 || tail > 256) return `the two-weight tail K % BK = ${tail} is not a multiple of 32 up to 256`;
  if (K - tail === 0) return `K = ${K} leaves no three-weight columns for BK = ${t.BK}`;
  return undefined;
}

/**
 * The computed TL2 tiling: bm = 32, BK = 96 (every TL2 preset but one uses it; with K % 32 == 0 the
 * tail K % 96 is 0, 32 or 64), BM = the largest multiple of 32 up to 256 dividing M.
 */
export function computeTl2Tiling(M: number, K: number): Tiling | undefined {
  const BM = largestDivisor(M, 32, 256);
  if (BM === undefined || K % 32 !== 0 || K < 256) return undefined;
  return { BM, BK: 96, bm: 32 };
}

function tl2Eligibility(M: number, K: number, explicit: Tiling | undefined): Eligibility {
  const preset = TL2_PRESETS[`${M},${K}`];
  const tiling = explicit ?? preset ?? computeTl2Tiling(M, K);
  const source: TilingSource = explicit ? "kernel-config" : preset ? "preset" : "computed";
  if (tiling === undefined) {
    const reason = M % 32 !== 0 ? `M = ${M} is not a multiple of 32` : K < 256 ? `K = ${K} is below 256` : `K = ${K} is not a multiple of 32`;
    return no("M % 32 == 0, K % 32 == 0 and K >= 256", reason);
  }
  const problem = tl2TilingProblem(M, K, tiling);
  if (problem !== undefined) return no(`tiling BM ${tiling.BM} / BK ${tiling.BK} / bm ${tiling.bm} fits the shape`, problem);
  return yes({ layout: "tl2", tilingSource: source, ...tiling }, tl2PayloadBytes(M, K), M * K);
}

/** Bytes of TL2's three regions for `rows` rows: the triplet magnitudes (A), the sign words (S), the tail's pairs (B). */
export function tl2RegionBytes(rows: number, K: number, { BK }: { readonly BK: number }): [number, number, number] {
  const K3 = Math.floor(K / BK) * BK;
  return [(rows * K3) / 6, (rows * K3) / 24, (rows * (K - K3)) / 4];
}

/**
 * TL2 weight bytes as bitnet.cpp sizes them (ggml_nbytes before its roundup to 32):
 * ((K - 256) * M / 3 * 5 / 8) + (256 * M / 2 * 4 / 8), integer ops left to right. K >= 256, so no
 * negative division. The f32 scale is stored separately (after rounding up to 32 in GGUF).
 */
export function tl2PayloadBytes(M: number, K: number): number {
  const threes = Math.floor((Math.floor(((K - 256) * M) / 3) * 5) / 8);
  const twos = Math.floor((Math.floor((256 * M) / 2) * 4) / 8);
  return threes + twos;
}

/** Largest multiple of `step` in [step, max] that divides n, or undefined. */
function largestDivisor(n: number, step: number, max: number): number | undefined {
  for (let d = Math.floor(max / step) * step; d >= step; d -= step) if (n % d === 0) return d;
  return undefined;
}
