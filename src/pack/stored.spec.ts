import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { B158Error } from "../errors.js";
import { fromBf16Bits, fromF16Bits, toBf16Bits, toF16Bits } from "./float16.js";
import type { GroupScales } from "./scales.js";
import { readStored, StoredTernaryReader } from "./stored.js";
import { ternarize, type LatentDtype } from "./ternarize.js";

function encode(values: ArrayLike<number>, dtype: LatentDtype): Uint8Array {
  if (dtype === "F32") return new Uint8Array(Float32Array.from(values).buffer);
  const bits = Uint16Array.from(Array.from(values), (v) => (dtype === "F16" ? toF16Bits(v) : toBf16Bits(v)));
  return new Uint8Array(bits.buffer);
}
/** k / 1024 for k in 1..4000: exact in F32, F16 and BF16 only for small k, so round through the dtype. */
const exact = (k: number, dtype: LatentDtype) => (dtype === "F32" ? Math.fround(k / 1024) : dtype === "F16" ? fromF16Bits(toF16Bits(k / 1024)) : fromBf16Bits(toBf16Bits(k / 1024)));

/** A [M, K] tensor of codes x one scale per group of G (G = K: per row), neighbouring groups' scales distinct, every group holding a nonzero. */
function groupedTensor(M: number, K: number, G: number, seed: number, dtype: LatentDtype) {
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8;
  const codes = Int8Array.from({ length: M * K }, () => (next() % 3) - 1);
  const values = new Float32Array((M * K) / G);
  for (let g = 0; g < values.length; g++) {
    codes[g * G + (next() % G)] = 1; // at least one nonzero per group
    let k: number;
    do k = 16 + (next() % 200);
    while (g > 0 && exact(k, dtype) === values[g - 1]);
    values[g] = exact(k, dtype);
  }
  const weights = Array.from(codes, (c, i) => c * values[Math.floor(i / G)]!);
  return { codes, scale: { groupSize: G, values } as GroupScales, bytes: encode(weights, dtype) };
}

describe("stored (fake-quantized) weights", () => {
  it.each(["F32", "F16", "BF16"] as const)("%s: the same exact-ternary tensor gives c under stored semantics and c x p under online semantics", (dtype) => {
    const codes = Int8Array.from({ length: 4 * 256 }, (_, i) => ((i * 7919) % 5 === 0 ? 0 : (i * 31) % 3 === 0 ? -1 : 1) as number);
    const c = exact(53, dtype);
    const bytes = encode(Array.from(codes, (t) => t * c), dtype);
    const p = codes.filter((t) => t !== 0).length / codes.length;
    const stored = readStored(bytes, dtype, [4, 256]);
    const online = ternarize(bytes, dtype);
    expect(stored.codes).toEqual(codes);
    expect(online.codes).toEqual(codes);
    expect(stored.scale).toBe(c);
    expect(online.scale.scale).toBeCloseTo(c * p, 6);
    expect(online.scale.scale).not.toBe(c);
  });

  it.each(["F32", "F16", "BF16"] as const)("%s: detects the granularity exactly: per tensor, per row, per group of 32 .. 256 along K", (dtype) => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.constantFrom(32, 64, 128, 256, "row" as const), fc.integer({ min: 1, max: 3 }), fc.integer(), (M, group, per, seed) => {
        const G = group === "row" ? 32 * per * 3 : group;
        const K = group === "row" ? G : G * (per * 2 - 1); // an odd number of groups: G is the coarsest that holds
        const t = groupedTensor(M, K, G, seed, dtype);
        const { codes, scale } = readStored(t.bytes, dtype, [M, K]);
        expect(codes).toEqual(t.codes);
        if (M === 1 && G === K) expect(scale).toBe(t.scale.values[0]); // one row: per tensor is as coarse
        else expect(scale).toEqual(t.scale);
      }),
      { numRuns: 60 },
    );
  });

  it("per tensor wins over any group when every nonzero has one magnitude; all-zero groups do not break a group", () => {
    const codes = Int8Array.from({ length: 2 * 128 }, (_, i) => (i < 64 ? 0 : i % 2 === 0 ? 1 : -1));
    expect(readStored(encode(Array.from(codes, (t) => t * 0.25), "F32"), "F32", [2, 128]).scale).toBe(0.25);
    const values = Array.from(codes, (t, i) => t * (i < 128 ? 0.25 : 0.5));
    expect(readStored(encode(values, "F32"), "F32", [2, 128]).scale).toEqual({ groupSize: 128, values: Float32Array.from([0.25, 0.5]) });
    expect(readStored(new Uint8Array(8 * 64), "F32", [2, 64]).scale).toBe(0); // all zero: scale 0 (validation reports E_ALL_ZERO)
  });

  it("K not a multiple of 32: only per tensor or per row", () => {
    const t = groupedTensor(3, 100, 100, 7, "F16");
    expect(readStored(t.bytes, "F16", [3, 100]).scale).toEqual(t.scale);
    const mixed = Array.from({ length: 100 }, (_, i) => (i < 50 ? 0.25 : 0.5));
    expect(() => readStored(encode(mixed, "F16"), "F16", [1, 100], "w")).toThrow(expect.objectContaining({ code: "E_STORED_NOT_TERNARY", message: expect.stringContaining("row 0 holds two magnitudes") }));
  });

  it("latent weights are never re-quantized: E_STORED_NOT_TERNARY naming the tensor, the place and the two magnitudes", () => {
    const latent = Array.from({ length: 256 }, (_, i) => Math.sin(i) * 0.02);
    try {
      readStored(encode(latent, "BF16"), "BF16", [2, 128], "model.layers.0.mlp.up_proj.weight");
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(B158Error);
      expect((e as B158Error).code).toBe("E_STORED_NOT_TERNARY");
      expect((e as B158Error).message).toContain("model.layers.0.mlp.up_proj.weight");
      expect((e as B158Error).message).toContain("row 0, columns 0..31");
      expect((e as B158Error).hint).toContain("--weights latent");
    }
  });

  it.each(["F32", "F16", "BF16"] as const)("%s: NaN and Inf are E_NONFINITE naming the tensor", (dtype) => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      expect(() => readStored(encode([0.5, bad, 0, -0.5], dtype), dtype, [1, 4], "w.weight")).toThrow(expect.objectContaining({ code: "E_NONFINITE", message: expect.stringContaining("w.weight") }));
    }
  });

  it("-0 is a zero, its sign ignored", () => {
    expect(Array.from(readStored(encode([-0, 0.5, -0.5, 0], "F16"), "F16", [1, 4]).codes)).toEqual([0, 1, -1, 0]);
  });

  it("streaming over odd-sized chunks gives what one pass gives", () => {
    const t = groupedTensor(3, 384, 128, 11, "BF16");
    const reader = new StoredTernaryReader("BF16", [3, 384]);
    const codes = new Int8Array(3 * 384);
    let written = 0;
    for (let o = 0; o < t.bytes.byteLength; o += 2 * 37) written += reader.encode(t.bytes.subarray(o, o + 2 * 37), codes, written);
    expect(codes).toEqual(t.codes);
    expect(reader.result()).toEqual(t.scale);
  });
});
