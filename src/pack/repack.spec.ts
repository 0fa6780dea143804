import { describe, expect, it } from "vitest";
import { B158Error } from "../errors.js";
import { packHfPacked } from "./hf-packed.js";
import { repackLinear, scaleFromWeightScale } from "./repack.js";
import { readStored } from "./stored.js";

describe("repacking pre-quantized weights", () => {
  it("autobitlinear (2B-4T) multiplies: scale = weight_scale", () => {
    expect(scaleFromWeightScale(0.0517578125, "multiply")).toBe(0.0517578125);
  });

  it("bitlinear (Falcon3, HF1BitLLM) divides: scale = 1 / weight_scale, as float32", () => {
    expect(scaleFromWeightScale(19.25, "divide")).toBe(Math.fround(1 / 19.25));
  });

  it.each([0, -1, NaN, Infinity])("a weight_scale of %d is E_SCALE_RANGE", (bad) => {
    try {
      scaleFromWeightScale(bad, "multiply", "model.layers.0.mlp.up_proj.weight_scale");
      expect.unreachable();
    } catch (e) {
      expect((e as B158Error).code).toBe("E_SCALE_RANGE");
    }
  });

  it("unpacks the codes losslessly, and the effective weights read as stored give them back exactly", () => {
    const codes = Int8Array.from({ length: 8 * 256 }, (_, i) => ((i * 7919) % 3) - 1);
    const packed = packHfPacked(codes, 8, 256);
    const { codes: back, scale } = repackLinear(packed, [2, 256], 8, 32, "divide");
    expect(back).toEqual(codes);
    // the dequantized tensor is exact ternary x scale: stored semantics read both back exactly
    const again = readStored(new Uint8Array(Float32Array.from(back, (c) => c * scale).buffer), "F32", [8, 256]);
    expect(again.codes).toEqual(codes);
    expect(again.scale).toBe(scale);
  });
});
