import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fromF16Bits, toF16Bits } from "./float16.js";
import { dequantizeQ8_0, quantizeQ8_0 } from "./q8_0.js";

describe("Q8_0", () => {
  it("encodes a block as ggml does: f16 d = absmax/127, then round-half-away int8", () => {
    const values = new Float32Array(32);
    values[0] = 1.27;
    values[1] = -1.27;
    values[2] = 0.005; // 0.5 quantum: rounds away from zero
    values[3] = -0.005;
    values[4] = 0.0049;
    const bytes = quantizeQ8_0(values);
    expect(bytes.length).toBe(34);
    const view = new DataView(bytes.buffer);
    expect(view.getUint16(0, true)).toBe(toF16Bits(Math.fround(Math.fround(1.27) / 127)));
    expect([...new Int8Array(bytes.buffer, 2, 5)]).toEqual([127, -127, 1, -1, 0]);
  });

  it("an all-zero block has d = 0 and zero codes", () => {
    const bytes = quantizeQ8_0(new Float32Array(64));
    expect([...bytes]).toEqual(new Array(68).fill(0));
  });

  it("round-trips within half a quantum per block", () => {
    fc.assert(
      fc.property(fc.array(fc.float({ min: -100, max: 100, noNaN: true }), { minLength: 32, maxLength: 32 * 4, size: "max" }).filter((a) => a.length % 32 === 0), (list) => {
        const values = Float32Array.from(list);
        const restored = dequantizeQ8_0(quantizeQ8_0(values));
        for (let b = 0; b < values.length / 32; b++) {
          const block = values.subarray(b * 32, b * 32 + 32);
          // codes are rounded against the f32 d, then multiplied by its f16 rounding (which may underflow)
          const d32 = Math.fround(block.reduce((m, v) => Math.max(m, Math.abs(v)), 0) / 127);
          const d16 = fromF16Bits(toF16Bits(d32));
          const bound = d32 * 0.5 * (1 + 1e-6) + 127 * Math.abs(d16 - d32);
          for (let j = 0; j < 32; j++) expect(Math.abs(restored[b * 32 + j]! - block[j]!)).toBeLessThanOrEqual(bound);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("refuses lengths that are not whole blocks", () => {
    expect(() => quantizeQ8_0(new Float32Array(31))).toThrow(RangeError);
    expect(() => dequantizeQ8_0(new Uint8Array(33))).toThrow(RangeError);
  });
});
