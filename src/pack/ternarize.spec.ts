import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { B158Error } from "../errors.js";
import { fromBf16Bits, fromF16Bits, toBf16Bits, toF16Bits } from "./float16.js";
import { ABSMEAN_FLOOR, AbsmeanAccumulator, ternarize, type LatentDtype } from "./ternarize.js";

function encode(values: ArrayLike<number>, dtype: LatentDtype): Uint8Array {
  if (dtype === "F32") return new Uint8Array(Float32Array.from(values).buffer);
  const bits = Uint16Array.from(Array.from(values), (v) => (dtype === "F16" ? toF16Bits(v) : toBf16Bits(v)));
  return new Uint8Array(bits.buffer);
}
const decoded = (v: number, dtype: LatentDtype) => (dtype === "F32" ? Math.fround(v) : dtype === "F16" ? fromF16Bits(toF16Bits(v)) : fromBf16Bits(toBf16Bits(v)));

/** The rule written out naively, element by element, as the docs state it. */
function reference(values: number[]): { codes: number[]; scale: number } {
  const mean = Math.fround(values.reduce((s, v) => s + Math.abs(v), 0) / values.length);
  const inv = Math.fround(1 / Math.max(mean, Math.fround(1e-5)));
  const codes = values.map((w) => {
    const x = Math.fround(w * inv);
    const r = Math.abs(x - Math.trunc(x)) === 0.5 ? 2 * Math.round(x / 2) : Math.round(x); // half to even
    return Math.max(-1, Math.min(1, r)) + 0;
  });
  return { codes, scale: Math.fround(1 / inv) };
}

describe("absmean ternarization", () => {
  it.each(["F32", "F16", "BF16"] as const)("%s: matches the rule written naively, for random latent weights", (dtype) => {
    fc.assert(
      fc.property(fc.array(fc.float({ min: -1, max: 1, noNaN: true }), { minLength: 2, maxLength: 200 }), (raw) => {
        const values = raw.map((v) => decoded(v, dtype));
        if (new Set(values.map(Math.abs).filter((a) => a !== 0)).size < 2) return; // exact-ternary input has its own rule
        const { codes, scale } = ternarize(encode(values, dtype), dtype);
        const want = reference(values);
        expect(Array.from(codes)).toEqual(want.codes);
        expect(scale.scale).toBe(want.scale);
        expect(scale.alreadyTernary).toBe(false);
      }),
      { numRuns: 150 },
    );
  });

  it.each(["F32", "F16", "BF16"] as const)("%s: idempotent on ternary x scale input (same codes, same scale)", (dtype) => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(-1, 0, 1), { minLength: 1, maxLength: 300 }), fc.integer({ min: 1, max: 4000 }), (codes, k) => {
        if (!codes.some((c) => c !== 0)) codes.push(1);
        const scale = decoded(k / 4096, dtype);
        const first = ternarize(encode(codes.map((c) => c * scale), dtype), dtype);
        expect(Array.from(first.codes)).toEqual(codes.map((c) => c + 0));
        expect(first.scale.scale).toBe(scale);
        const second = ternarize(encode(Array.from(first.codes, (c) => c * first.scale.scale), dtype), dtype);
        expect(second.codes).toEqual(first.codes);
        expect(second.scale.scale).toBe(first.scale.scale);
      }),
      { numRuns: 100 },
    );
  });

  it("all-zero tensor: every code 0 and the scale floor 1e-5", () => {
    const { codes, scale } = ternarize(new Uint8Array(4 * 64), "F32");
    expect(codes.every((c) => c === 0)).toBe(true);
    expect(scale.scale).toBe(Math.fround(1 / Math.fround(1 / ABSMEAN_FLOOR)));
    expect(scale.scale).toBeCloseTo(1e-5, 10);
  });

  it("values exactly at +-0.5 x scale round half to even (to 0), just above round away", () => {
    // mean(|2.5|, |-2.5|, |1|) = 2, so inv = 0.5 and 1 x inv = 0.5 exactly
    expect(Array.from(ternarize(encode([2.5, -2.5, 1], "F32"), "F32").codes)).toEqual([1, -1, 0]);
    expect(Array.from(ternarize(encode([2.5, -2.5, -1], "F32"), "F32").codes)).toEqual([1, -1, 0]);
    // 1.5 x inv rounds to 2 (even) and clamps to 1
    expect(Array.from(ternarize(encode([1, 1, 1, -1, 1.5, 0.5], "F32"), "F32").codes)).toEqual([1, 1, 1, -1, 1, 0]);
  });

  it.each(["F32", "F16", "BF16"] as const)("%s: NaN and Inf are E_NONFINITE, not garbage", (dtype) => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      try {
        ternarize(encode([0.1, bad, 0.2], dtype), dtype, "model.layers.0.mlp.up_proj.weight");
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(B158Error);
        expect((e as B158Error).code).toBe("E_NONFINITE");
        expect((e as B158Error).message).toContain("model.layers.0.mlp.up_proj.weight");
      }
    }
  });

  it.each(["F32", "F16", "BF16"] as const)("%s: streaming over odd-sized chunks gives the same result as one pass", (dtype) => {
    for (const values of [Array.from({ length: 1001 }, (_, i) => Math.sin(i) * 0.03), Array.from({ length: 999 }, (_, i) => ((i * 7) % 3) - 1).map((c) => c * 0.25)]) {
      const bytes = encode(values, dtype);
      const whole = ternarize(bytes, dtype);
      const size = dtype === "F32" ? 4 : 2;
      const accumulator = new AbsmeanAccumulator(dtype);
      for (let o = 0; o < bytes.length; o += 17 * size) accumulator.add(bytes.subarray(o, o + 17 * size));
      const coder = accumulator.coder();
      const codes = new Int8Array(values.length);
      let written = 0;
      for (let o = 0; o < bytes.length; o += 31 * size) written += coder.encode(bytes.subarray(o, o + 31 * size), codes, written);
      expect(written).toBe(values.length);
      expect(codes).toEqual(whole.codes);
      expect(coder.result()).toEqual(whole.scale);
    }
  });

  it("exact ternary input below the absmean floor follows the floor rule (all codes 0)", () => {
    const { codes, scale } = ternarize(encode([1e-7, 0, -1e-7, 0], "F32"), "F32");
    expect(Array.from(codes)).toEqual([0, 0, 0, 0]);
    expect(scale.alreadyTernary).toBe(false);
  });
});
