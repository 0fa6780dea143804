import { B158Error } from "../errors.js";

/**
 * A ternary tensor's scale (effective weight = scale x code): one value for the whole tensor, or
 * one per group of `groupSize` consecutive weights along K, a [rows, K / groupSize] array in
 * row-major order (per row is groupSize = K). docs/FORMAT.md §1.7 and docs/ternarization.md.
 */
export type TensorScale = number | GroupScales;

export interface GroupScales {
  /** Weights per group along K; divides K. K itself means one scale per row. */
  readonly groupSize: number;
  /** [rows, K / groupSize], row-major. An all-zero group has scale 0. */
  readonly values: Float32Array;
}

export function isGroupScales(scale: TensorScale): scale is GroupScales {
  return typeof scale !== "number";
}

/** "per tensor", "per row" or "per group of 128", for reports and messages. */
export function describeGranularity(groupSize: number | undefined, K: number): string {
  if (groupSize === undefined) return "per tensor";
  return groupSize === K ? `per row (G = K = ${K})` : `per group of ${groupSize} along K`;
}

/** The scale of element `index` (row-major [M, K]). */
export function scaleAt(scale: TensorScale, K: number, index: number): number {
  if (typeof scale === "number") return scale;
  const groupsPerRow = K / scale.groupSize;
  const row = Math.floor(index / K);
  return scale.values[row * groupsPerRow + Math.floor((index - row * K) / scale.groupSize)]!;
}

/** code x scale for every element: the effective weights. */
export function applyScale(codes: Int8Array, K: number, scale: TensorScale, out: Float32Array = new Float32Array(codes.length)): Float32Array {
  if (typeof scale === "number") {
    for (let i = 0; i < codes.length; i++) out[i] = codes[i]! * scale;
    return out;
  }
  const G = scale.groupSize;
  for (let g = 0; g < scale.values.length; g++) {
    const s = scale.values[g]!;
    for (let i = g * G; i < (g + 1) * G; i++) out[i] = codes[i]! * s;
  }
  return out;
}

/**
 * Per-block scales for a layout whose blocks of `block` weights lie within a row (TQ: 256, Q2_0:
 * 64): the tensor's scale, or each block's group scale. A group must cover whole blocks: G a
 * multiple of `block` (the caller checked eligibility; anything else is a bug).
 */
export function blockScales(scale: TensorScale, M: number, K: number, block: number, layout: string): number | Float32Array {
  if (typeof scale === "number") return scale;
  const G = scale.groupSize;
  if (G % block !== 0 || K % G !== 0 || scale.values.length !== (M * K) / G) {
    throw new B158Error("E_INTERNAL", `${layout}: group scales of ${G} (${scale.values.length} values) for a [${M}, ${K}] tensor with ${block}-weight blocks`, {
      details: { layout, groupSize: G, M, K },
    });
  }
  const perGroup = G / block;
  const out = new Float32Array((M * K) / block);
  for (let b = 0; b < out.length; b++) out[b] = scale.values[Math.floor(b / perGroup)]!;
  return out;
}

/**
 * The group scales a layout's per-block scales hold at `groupSize` (the inverse of blockScales):
 * a group's scale is the d of its blocks that hold a nonzero code (0 when none does; the d of an
 * all-zero block is not read). Returns the first group whose nonzero blocks disagree (compared as
 * numbers: a NaN d agrees with nothing) instead, for the reader to report.
 */
export function groupScalesFromBlocks(blocks: Float32Array, codes: Int8Array, M: number, K: number, block: number, groupSize: number): GroupScales | { readonly conflict: { row: number; group: number; scales: [number, number] } } {
  const perGroup = groupSize / block;
  const values = new Float32Array((M * K) / groupSize);
  for (let g = 0; g < values.length; g++) {
    let s: number | undefined;
    for (let b = g * perGroup; b < (g + 1) * perGroup; b++) {
      if (!anyNonzero(codes, b * block, (b + 1) * block)) continue;
      const d = blocks[b]!;
      if (s === undefined) s = d;
      else if (d !== s) return { conflict: { row: Math.floor((g * groupSize) / K), group: g % (K / groupSize), scales: [s, d] } };
    }
    values[g] = s ?? 0;
  }
  return { groupSize, values };
}

/**
 * The first block holding a nonzero code whose d is not `expected` (a per-tensor scale in a layout
 * with a d per block: every such block must hold it), or undefined. All-zero blocks are not read.
 */
export function blockScaleMismatch(blocks: Float32Array, codes: Int8Array, block: number, expected: number): { readonly block: number; readonly d: number } | undefined {
  for (let b = 0; b < blocks.length; b++) {
    if (blocks[b] !== expected && anyNonzero(codes, b * block, (b + 1) * block)) return { block: b, d: blocks[b]! };
  }
  return undefined;
}

/** The first group holding a nonzero code whose scale is not finite and positive, or undefined. */
export function invalidGroupScale(scale: GroupScales, codes: Int8Array): { readonly group: number; readonly scale: number } | undefined {
  const G = scale.groupSize;
  for (let g = 0; g < scale.values.length; g++) {
    const s = scale.values[g]!;
    if (!(Number.isFinite(s) && s > 0) && anyNonzero(codes, g * G, (g + 1) * G)) return { group: g, scale: s };
  }
  return undefined;
}

export function anyNonzero(codes: Int8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (codes[i] !== 0) return true;
  return false;
}

/** The rows of a group-scale array, reordered as `permuteRows` reorders the weight rows (`order[to] = from`). */
export function permuteScaleRows(scale: TensorScale, K: number, order: readonly number[]): TensorScale {
  if (typeof scale === "number") return scale;
  const perRow = K / scale.groupSize;
  const values = new Float32Array(scale.values.length);
  order.forEach((from, to) => values.set(scale.values.subarray(from * perRow, (from + 1) * perRow), to * perRow));
  return { groupSize: scale.groupSize, values };
}
