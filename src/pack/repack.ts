import { B158Error } from "../errors.js";
import { unpackHfPacked } from "./hf-packed.js";

/**
 * Repacking a pre-quantized checkpoint: transformers' packed U8 weight becomes ternary codes, and
 * its `weight_scale` becomes b158's per-tensor scale (effective weight = scale x code) by the
 * checkpoint's convention (docs/families.md): AutoBitLinear multiplies, BitLinear divides.
 */
export type PackedConvention = "multiply" | "divide";

export function scaleFromWeightScale(weightScale: number, convention: PackedConvention, tensorName = "tensor"): number {
  if (!Number.isFinite(weightScale) || weightScale <= 0) {
    throw new B158Error("E_SCALE_RANGE", `"${tensorName}" weight_scale ${weightScale} is not finite and positive`, {
      hint: "The checkpoint is corrupt: run b158 validate on it.",
      details: { tensor: tensorName, weightScale },
    });
  }
  return Math.fround(convention === "multiply" ? weightScale : 1 / weightScale);
}

/** Codes [out, in] and the per-tensor scale of one packed linear. */
export function repackLinear(
  packed: Uint8Array,
  packedShape: readonly [number, number],
  outRows: number,
  weightScale: number,
  convention: PackedConvention,
  tensorName = "tensor",
): { codes: Int8Array; scale: number } {
  const [rows, cols] = packedShape;
  return { codes: unpackHfPacked(packed, rows, cols, outRows, tensorName), scale: scaleFromWeightScale(weightScale, convention, tensorName) };
}
