import { B158Error } from "../errors.js";
import { unpackLayout } from "../pack/codec.js";
import type { ScaleSpec, TernaryWeightInput, TernaryWeightSource } from "./kernels/api.js";
import type { EmbeddingRows } from "./transformer.js";

/** A ternary source's kinds (as opposed to a float matrix's f32 / f16 / bf16); its payload may still be in its file. */
export function isTernarySource(source: { readonly kind: string }): source is TernaryWeightInput {
  return source.kind === "i2_s" || source.kind === "tq2_0" || source.kind === "codes";
}

/**
 * The rows of a ternary token embedding (Ternary-Bonsai's), looked up by the runtime itself:
 * decoded once to one int8 code per weight plus the scales (1 byte per weight, a quarter of f32),
 * a row is code x its block's scale, as the framework's embedding of t x s returns it.
 */
export function ternaryEmbeddingRows(source: TernaryWeightSource): EmbeddingRows {
  const { rows, cols } = source;
  let codes: Int8Array;
  let scales: ScaleSpec;
  if (source.kind === "codes") {
    codes = source.codes;
    scales = source.scales;
  } else if (source.kind === "tq2_0") {
    const unpacked = unpackLayout({ layout: "tq2_0", blockSize: 256 }, source.payload, [rows, cols]);
    codes = unpacked.codes;
    scales = { granularity: "group", groupSize: 256, scales: unpacked.blockScales! };
  } else if (source.kind === "threshold16") {
    throw new B158Error("E_INTERNAL", "ternary embedding: 16-bit latent weights are not an embedding the runtime looks up");
  } else {
    const unpacked = unpackLayout({ layout: "i2_s", blockSize: source.blockSize, variant: source.blockSize === 128 ? "x86" : "arm" }, source.payload, [rows, cols]);
    codes = unpacked.codes;
    scales = { granularity: "tensor", scale: unpacked.scale! };
  }
  if (codes.length !== rows * cols) throw new B158Error("E_INTERNAL", `ternary embedding: ${codes.length} codes for [${rows}, ${cols}]`);
  return {
    rows,
    cols,
    row(index, out) {
      const base = index * cols;
      if (scales.granularity === "tensor") {
        for (let k = 0; k < cols; k++) out[k] = codes[base + k]! * scales.scale;
      } else if (scales.granularity === "row") {
        const s = scales.scales[index]!;
        for (let k = 0; k < cols; k++) out[k] = codes[base + k]! * s;
      } else {
        const G = scales.groupSize;
        const groups = cols / G;
        for (let k = 0; k < cols; k++) out[k] = codes[base + k]! * scales.scales[index * groups + Math.floor(k / G)]!;
      }
    },
  };
}
