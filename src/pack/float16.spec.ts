import { describe, expect, it } from "vitest";
import { bf16BitsToF16Bits, float32Bits, float32ToF16Bits, fromBf16Bits, fromF16Bits, halfBitsToFloat32, toBf16Bits, toF16Bits } from "./float16.js";

describe("f16", () => {
  it("encodes known values exactly", () => {
    expect(toF16Bits(1)).toBe(0x3c00);
    expect(toF16Bits(-2)).toBe(0xc000);
    expect(toF16Bits(0.0517578125)).toBe(0x2aa0); // 53/1024, the golden vectors' scale
    expect(toF16Bits(65504)).toBe(0x7bff);
    expect(toF16Bits(65520)).toBe(0x7c00); // rounds up to infinity
    expect(toF16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(toF16Bits(2 ** -26)).toBe(0x0000); // below half the smallest subnormal
    expect(toF16Bits(-0)).toBe(0x8000);
    expect(toF16Bits(Infinity)).toBe(0x7c00);
    expect(toF16Bits(NaN) & 0x7c00).toBe(0x7c00);
  });

  it("rounds half to even", () => {
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: even mantissa (1) wins
    expect(toF16Bits(1 + 2 ** -11)).toBe(0x3c00);
    // 1 + 3 * 2^-11 is halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even)
    expect(toF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
  });

  it("decodes every f16 bit pattern back to itself", () => {
    const wrong: number[] = [];
    for (let bits = 0; bits < 0x10000; bits++) {
      const value = fromF16Bits(bits);
      if (!Number.isNaN(value) && toF16Bits(value) !== bits) wrong.push(bits);
    }
    expect(wrong).toEqual([]);
  });
});

describe("bf16", () => {
  it("keeps the top half of float32, rounding to nearest even", () => {
    expect(toBf16Bits(1)).toBe(0x3f80);
    expect(toBf16Bits(float32FromParts(0x3f808000))).toBe(0x3f80); // halfway, even stays
    expect(toBf16Bits(float32FromParts(0x3f818000))).toBe(0x3f82); // halfway, odd rounds up
    expect(toBf16Bits(float32FromParts(0x3f808001))).toBe(0x3f81);
    expect(toBf16Bits(NaN) & 0x7f80).toBe(0x7f80);
    expect(toBf16Bits(NaN) & 0x7f).not.toBe(0);
  });

  it("decodes every bf16 bit pattern back to itself", () => {
    const wrong: number[] = [];
    for (let bits = 0; bits < 0x10000; bits++) {
      const value = fromBf16Bits(bits);
      if (!Number.isNaN(value) && (toBf16Bits(value) !== bits || float32Bits(value) >>> 16 !== bits)) wrong.push(bits);
    }
    expect(wrong).toEqual([]);
  });
});

function float32FromParts(bits: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setUint32(0, bits);
  return view.getFloat32(0);
}

describe("array conversions (tables over all 65536 patterns)", () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const same = (a: number, b: number) => (Number.isNaN(a) ? Number.isNaN(b) : Object.is(a, b));

  it("halfBitsToFloat32 agrees with the scalar decoders on every pattern", () => {
    const f16 = halfBitsToFloat32(all, "f16");
    const bf16 = halfBitsToFloat32(all, "bf16");
    for (let i = 0; i < 65536; i++) {
      expect(same(f16[i]!, Math.fround(fromF16Bits(i))), `f16 ${i}`).toBe(true);
      expect(same(bf16[i]!, fromBf16Bits(i)), `bf16 ${i}`).toBe(true);
    }
  });

  it("bf16BitsToF16Bits and float32ToF16Bits round as toF16Bits does", () => {
    const direct = bf16BitsToF16Bits(all);
    const viaFloat = float32ToF16Bits(halfBitsToFloat32(all, "bf16"));
    for (let i = 0; i < 65536; i++) {
      expect(direct[i], `bf16 ${i}`).toBe(toF16Bits(fromBf16Bits(i)));
      expect(viaFloat[i], `bf16 ${i}`).toBe(direct[i]);
    }
  });
});
