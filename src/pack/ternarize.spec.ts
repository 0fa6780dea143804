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
      fc.property(fc.array(fc.float({ min: -1, max: 1, noNaN: true }), { minLength: 2, maxLength: 200, size: "max" }), (raw) => {
        const values = raw.map((v) => decoded(v, dtype));
        const { codes, scale } = ternarize(encode(values, dtype), dtype);
        const want = reference(values);
        expect(Array.from(codes)).toEqual(want.codes);
        expect(scale.scale).toBe(want.scale);
      }),
      { numRuns: 150 },
    );
  });

  it.each(["F32", "F16", "BF16"] as const)("%s: exact ternary x c input gets scale c x p (online semantics: what the framework computes)", (dtype) => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(-1, 0, 1), { minLength: 1, maxLength: 300, size: "max" }), fc.integer({ min: 64, max: 4000 }), (codes, k) => {
        if (!codes.some((c) => c !== 0)) codes.push(1);
        const c = decoded(k / 4096, dtype);
        const values = codes.map((t) => t * c);
        const { codes: got, scale } = ternarize(encode(values, dtype), dtype);
        // the same codes (|t / p| >= 1), but the scale is absmean = c x (nonzero fraction), not c
        expect(Array.from(got)).toEqual(codes.map((t) => t + 0));
        expect(scale.scale).toBe(reference(values).scale);
        const p = codes.filter((t) => t !== 0).length / codes.length;
        expect(scale.scale).toBeCloseTo(c * p, 6);
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
    expect(scale.scale).toBe(Math.fround(1 / Math.fround(1 / ABSMEAN_FLOOR)));
  });
});

/** Pass 1 as it was before pieces existed: per chunk, four float64 sums over four-pair groups, the tail into the first. */
function chunkedSum(bytes: Uint8Array, dtype: LatentDtype, step: number): number {
  let total = 0;
  for (let at = 0; at < bytes.byteLength; at += step) {
    const chunk = bytes.slice(at, Math.min(bytes.byteLength, at + step));
    if (dtype === "F32") {
      let a = 0;
      for (const v of new Float32Array(chunk.buffer)) a += Math.abs(v);
      total += a;
      continue;
    }
    const decode = dtype === "F16" ? fromF16Bits : fromBf16Bits;
    const words = new Uint16Array(chunk.buffer);
    const sums = [0, 0, 0, 0];
    const whole = words.length - (words.length % 8);
    for (let i = 0; i < whole; i += 8) for (let k = 0; k < 4; k++) sums[k]! += Math.abs(decode(words[i + 2 * k]! & 0x7fff)) + Math.abs(decode(words[i + 2 * k + 1]! & 0x7fff));
    for (let i = whole; i < words.length; i++) sums[0]! += Math.abs(decode(words[i]! & 0x7fff));
    total += sums[0]! + sums[1]! + (sums[2]! + sums[3]!);
  }
  return total;
}

describe("pass 1 in pieces", () => {
  it.each(["F32", "F16", "BF16"] as const)("%s: pieces of a chunk give the very sum (and scale) of whole chunks", (dtype) => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 700 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 5 }), fc.integer(), (n, stepWords, pieceUnits, seed) => {
        let s = seed >>> 0;
        const values = Array.from({ length: n }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.1);
        const bytes = encode(values, dtype);
        const step = stepWords * 16 + (dtype === "F32" ? 4 : 2) * (seed & 1); // chunks that are and are not multiples of 16
        const whole = new AbsmeanAccumulator(dtype);
        const pieces = new AbsmeanAccumulator(dtype);
        for (let at = 0; at < bytes.byteLength; at += step) {
          const chunk = bytes.subarray(at, Math.min(bytes.byteLength, at + step));
          whole.add(chunk);
          for (let p = 0; p < chunk.byteLength; p += pieceUnits * 16) pieces.addPiece(chunk.subarray(p, p + pieceUnits * 16), p + pieceUnits * 16 >= chunk.byteLength);
        }
        const sumOf = (acc: AbsmeanAccumulator) => (acc as unknown as { sum: number }).sum;
        expect(sumOf(whole)).toBe(chunkedSum(bytes, dtype, step));
        expect(sumOf(pieces)).toBe(sumOf(whole));
        expect(pieces.coder().provisionalScale).toBe(whole.coder().provisionalScale);
      }),
      { numRuns: 150 },
    );
  });

  it("a NaN in a later piece is reported at its index within the chunk, as for the whole chunk", () => {
    const values = Array.from({ length: 64 }, (_, i) => (i === 37 ? NaN : 0.01 * (i + 1)));
    const bytes = encode(values, "BF16");
    const messageOf = (feed: (acc: AbsmeanAccumulator) => void) => {
      try {
        feed(new AbsmeanAccumulator("BF16", "t"));
      } catch (e) {
        return (e as B158Error).message;
      }
      return "no error";
    };
    const whole = messageOf((acc) => acc.add(bytes));
    expect(whole).toContain("element 37");
    expect(messageOf((acc) => [0, 32, 64, 96].forEach((p) => acc.addPiece(bytes.subarray(p, p + 32), p === 96)))).toBe(whole);
  });

  it("refuses a piece that would split a four-pair group", () => {
    expect(() => new AbsmeanAccumulator("BF16").addPiece(new Uint8Array(10), false)).toThrow(B158Error);
  });
});
