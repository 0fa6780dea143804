import { createHash } from "node:crypto";
import type { ByteSource } from "../io/byte-source.js";
import { packLayout } from "../pack/codec.js";
import type { LayoutParams } from "../pack/layouts.js";
import { unpackHfPacked } from "../pack/hf-packed.js";
import { AbsmeanAccumulator, type LatentDtype } from "../pack/ternarize.js";
import { dequantize, type FloatLayout } from "./float-convert.js";

/**
 * One ternary tensor's conversion: read it from its weights file by position, ternarize (two
 * streaming passes) or unpack, then pack into its layout or, for an ineligible shape with a
 * fallback, dequantize to float. Pure apart from the reads, so it runs the same in a worker
 * thread or inline, and the output never depends on which.
 */
export interface TernaryTask {
  readonly name: string;
  /** Path of the weights file (workers open it themselves). */
  readonly path: string;
  readonly fileOffset: number;
  readonly byteLength: number;
  readonly sourceDtype: string;
  /** [out, in] of the weight (unpacked for packed sources). */
  readonly shape: readonly [number, number];
  readonly action: "ternarize" | "repack";
  /** repack: the packed [rows, cols] and the per-tensor scale already derived from weight_scale. */
  readonly packedShape?: readonly [number, number];
  readonly repackScale?: number;
  readonly encoding: { readonly kind: "layout"; readonly params: LayoutParams } | { readonly kind: "fallback"; readonly dtype: FloatLayout };
  /** Bytes per read; bounds memory on top of the codes and the payload. */
  readonly chunkBytes: number;
}

export interface TernaryResult {
  readonly payload: Uint8Array;
  readonly scale: number;
  readonly alreadyTernary: boolean;
  /** sha256 of the codes (int8 [out*in]), for validating the written payload. */
  readonly codesSha256: string;
  /** How many codes are -1, 0 and +1. */
  readonly counts: readonly [number, number, number];
}

export async function runTernaryTask(task: TernaryTask, source: ByteSource): Promise<TernaryResult> {
  const [M, K] = task.shape;
  let codes: Int8Array;
  let scale: number;
  let alreadyTernary = false;
  if (task.action === "repack") {
    const bytes = await source.read(task.fileOffset, task.byteLength);
    const [rows, cols] = task.packedShape!;
    codes = unpackHfPacked(bytes, rows, cols, M, task.name);
    scale = task.repackScale!;
  } else {
    const dtype = task.sourceDtype as LatentDtype;
    const elementBytes = dtype === "F32" ? 4 : 2;
    const step = Math.max(elementBytes, Math.floor(task.chunkBytes / 4) * 4);
    const accumulator = new AbsmeanAccumulator(dtype, task.name);
    for (let done = 0; done < task.byteLength; done += step) accumulator.add(await source.read(task.fileOffset + done, Math.min(step, task.byteLength - done)));
    const coder = accumulator.coder();
    codes = new Int8Array(M * K);
    let written = 0;
    for (let done = 0; done < task.byteLength; done += step) {
      written += coder.encode(await source.read(task.fileOffset + done, Math.min(step, task.byteLength - done)), codes, written);
    }
    const result = coder.result();
    scale = result.scale;
    alreadyTernary = result.alreadyTernary;
  }
  const counts: [number, number, number] = [0, 0, 0];
  for (let i = 0; i < codes.length; i++) counts[codes[i]! + 1]!++;
  const codesSha256 = createHash("sha256").update(codes).digest("hex");
  const payload = task.encoding.kind === "layout" ? packLayout(task.encoding.params, codes, [M, K], scale) : dequantize(codes, scale, task.encoding.dtype);
  return { payload, scale, alreadyTernary, codesSha256, counts };
}
