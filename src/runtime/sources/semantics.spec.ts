import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { expectB158Error } from "../../../test/support/expect-error.js";
import { toBf16Bits, toF16Bits } from "../../pack/float16.js";
import { packHfPacked } from "../../pack/hf-packed.js";
import { ternarize } from "../../pack/ternarize.js";
import { absmeanTernarize, packedScale, unpackQuarters } from "./semantics.js";

/** Little-endian bytes of `values` as a latent dtype. */
function encode(values: readonly number[], dtype: "F32" | "F16" | "BF16"): Uint8Array {
  if (dtype === "F32") return new Uint8Array(Float32Array.from(values).buffer);
  return new Uint8Array(Uint16Array.from(values, (v) => (dtype === "F16" ? toF16Bits(v) : toBf16Bits(v))).buffer);
}

describe("the runtime's reading of source checkpoints (independent of src/pack)", () => {
  it("absmean: docs/ternarization.md's arithmetic on a hand-checked tensor", () => {
    // mean |W| = (0.5 + 0.1 + 0.3 + 0.9 + 0 + 0.2) / 6 = 1/3: inv = f32(3), |w| * 3 > 0.5 codes to +-1, 0.1 * 3 = 0.3 to 0
    const { codes, scale } = absmeanTernarize(encode([0.5, -0.1, 0.3, -0.9, 0, 0.2], "F32"), "F32", 6, "w");
    expect(Array.from(codes)).toEqual([1, 0, 1, -1, 0, 1]);
    expect(scale).toBe(Math.fround(1 / Math.fround(1 / Math.fround(1 / 3))));
  });

  it("absmean agrees with the converter's ternarizer on random latent tensors of every dtype", () => {
    fc.assert(
      fc.property(fc.constantFrom("F32" as const, "F16" as const, "BF16" as const), fc.array(fc.float({ min: -2, max: 2, noNaN: true }), { minLength: 1, maxLength: 300, size: "max" }), (dtype, values) => {
        const bytes = encode(values, dtype);
        const ours = absmeanTernarize(bytes, dtype, values.length, "w");
        const theirs = ternarize(bytes, dtype, "w");
        expect(ours.scale).toBe(theirs.scale.scale);
        expect(Array.from(ours.codes)).toEqual(Array.from(theirs.codes));
      }),
      { numRuns: 300 },
    );
  });

  it("absmean floors the mean at 1e-5 and refuses NaN", async () => {
    const zeros = absmeanTernarize(encode([0, 0, 0, 0], "F32"), "F32", 4, "w");
    expect(Array.from(zeros.codes)).toEqual([0, 0, 0, 0]);
    expect(zeros.scale).toBeCloseTo(1e-5, 10);
    await expectB158Error(() => absmeanTernarize(encode([1, Number.NaN], "F32"), "F32", 2, "w"), "E_NONFINITE");
  });

  it("unpacks transformers' quarter packing (round trip through its packer, any out % 4)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 13 }), fc.integer({ min: 1, max: 9 }), fc.integer(), (rows, cols, seed) => {
        const codes = Int8Array.from({ length: rows * cols }, (_, i) => (((seed + i * 7919) % 3) + 3) % 3 - 1);
        const packed = packHfPacked(codes, rows, cols);
        expect(Array.from(unpackQuarters(packed, Math.ceil(rows / 4), cols, rows, "w"))).toEqual(Array.from(codes));
      }),
    );
    // row i*R + r sits in bits 2i of packed row r: rows 0 and 2 of a [4, 1] weight with R = 1
    expect(Array.from(unpackQuarters(Uint8Array.of(0b01_10_01_00), 1, 1, 4, "w"))).toEqual([-1, 0, 1, 0]);
  });

  it("refuses the unused code 3 and impossible shapes; weight_scale multiplies or divides", async () => {
    await expectB158Error(() => unpackQuarters(Uint8Array.of(0b11), 1, 1, 4, "w"), "E_PACKED_CODE");
    await expectB158Error(() => unpackQuarters(Uint8Array.of(0, 0), 1, 1, 4, "w"), "E_PACKED_SHAPE");
    await expectB158Error(() => unpackQuarters(Uint8Array.of(0), 1, 1, 5, "w"), "E_PACKED_SHAPE");
    expect(packedScale(0.25, "multiply", "s")).toBe(0.25);
    expect(packedScale(0.25, "divide", "s")).toBe(4);
    await expectB158Error(() => packedScale(0, "divide", "s"), "E_PACKED_SHAPE");
  });
});
