import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { packI2S, unpackI2S } from "./i2s.js";
import { packLayout } from "./codec.js";
import { checkEligibility, type Tiling } from "./layouts.js";
import { readStored } from "./stored.js";
import { ternarize } from "./ternarize.js";
import { packTl1, unpackTl1 } from "./tl1.js";
import { packTl2, unpackTl2 } from "./tl2.js";
import { packQ2_0, unpackQ2_0 } from "./q2_0.js";
import type { GroupScales } from "./scales.js";
import { packTq1_0, packTq2_0, unpackTq1_0, unpackTq2_0 } from "./tq.js";
import { lcgTernary } from "../../test/support/vector-lcg.js";

/**
 * Byte-exact agreement with the upstream implementations' own outputs (test/vectors: bitnet.cpp's
 * C quantizer and Python transforms, llama.cpp's gguf-py quantizer). See test/vectors/README.md.
 */
const VECTORS = fileURLToPath(new URL("../../test/vectors/", import.meta.url));
const vector = (path: string): Uint8Array => new Uint8Array(readFileSync(VECTORS + path));
const SCALE = 53 / 1024;

/** Fails with the first differing offset in hex, as gguf-py's compare_tensors does. */
function expectSameBytes(actual: Uint8Array, expected: Uint8Array): void {
  expect(actual.byteLength).toBe(expected.byteLength);
  const at = actual.findIndex((b, i) => b !== expected[i]);
  if (at !== -1) {
    const hex = (bytes: Uint8Array) => Buffer.from(bytes.subarray(Math.max(0, at - 4), at + 12)).toString("hex");
    expect.fail(`first difference at byte ${at}: got ${hex(actual)}, want ${hex(expected)}`);
  }
}

/** Deep toEqual is far too slow on 10M-element arrays: compare the bytes. */
function expectSameCodes(actual: Int8Array, expected: Int8Array): void {
  expectSameBytes(new Uint8Array(actual.buffer, actual.byteOffset, actual.byteLength), new Uint8Array(expected.buffer, expected.byteOffset, expected.byteLength));
}

const f32 = (bytes: Uint8Array) => new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
const i8 = (bytes: Uint8Array) => new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);

describe("golden vectors", () => {
  it("are in the repository, each file as its manifest records it", () => {
    expect(existsSync(VECTORS), `missing ${VECTORS}`).toBe(true);
    let checked = 0;
    for (const folder of ["bitnet", "tq", "q2_0"]) {
      const manifest = JSON.parse(readFileSync(`${VECTORS}${folder}/manifest.json`, "utf8")) as Record<string, { bytes: number; sha256?: string }>;
      for (const [file, entry] of Object.entries(manifest)) {
        const path = `${VECTORS}${folder}/${file}`;
        expect(existsSync(path), path).toBe(true);
        const bytes = readFileSync(path);
        expect(bytes.byteLength, file).toBe(entry.bytes);
        if (entry.sha256 !== undefined) expect(createHash("sha256").update(bytes).digest("hex"), file).toBe(entry.sha256);
        checked++;
      }
    }
    expect(checked).toBe(25);
  });

  const codes256 = i8(vector("bitnet/ternary_256x256.i8"));
  const weights256 = vector("bitnet/weights_256x256.f32");

  it("the stored inputs are what the LCG generates (and the manifest's hash)", () => {
    expectSameCodes(lcgTernary(12345, 256, 256), codes256);
    const manifest = JSON.parse(readFileSync(VECTORS + "bitnet/manifest.json", "utf8"));
    expect(createHash("sha256").update(codes256).digest("hex")).toBe(manifest["ternary_256x256.i8"].sha256);
  });

  it("absmean (online semantics) of the float input gives the codes and the scale 53/1024 x (nonzero fraction)", () => {
    const { codes, scale } = ternarize(weights256, "F32");
    expect(codes).toEqual(codes256);
    const nonzero = (21901 + 21855) / 65536;
    expect(scale.scale).toBe(Math.fround(1 / Math.fround(1 / Math.fround(SCALE * nonzero))));
  });

  it("stored semantics read the same float input back exactly: the codes and 53/1024, per tensor", () => {
    const { codes, scale } = readStored(weights256, "F32", [256, 256]);
    expect(codes).toEqual(codes256);
    expect(scale).toBe(SCALE);
  });

  it.each([
    ["bitnet/i2s_x86_256x256.bin", 128],
    ["bitnet/i2s_py_256x256.bin", 128],
    ["bitnet/i2s_arm_256x256.bin", 64],
  ] as const)("I2_S %s", (file, blockSize) => {
    const expected = vector(file);
    expectSameBytes(packI2S(codes256, 256, 256, SCALE, blockSize), expected);
    const back = unpackI2S(expected, 256, 256, blockSize);
    expect(back.codes).toEqual(codes256);
    expect(back.scale).toBe(SCALE);
  });

  const tl1Cases: [string, number, Tiling, Int8Array | (() => Int8Array)][] = [
    ["bitnet/tl1_256x256_BM128_BK64_bm32.bin", 256, { BM: 128, BK: 64, bm: 32 }, codes256],
    ["bitnet/tl1_256x256_BM256_BK128_bm64.bin", 256, { BM: 256, BK: 128, bm: 64 }, codes256],
    ["bitnet/tl1_1536x1536_BM128_BK64_bm64_seed4242.bin", 1536, { BM: 128, BK: 64, bm: 64 }, () => lcgTernary(4242, 1536, 1536)],
  ];
  it.each(tl1Cases)("TL1 %s", (file, n, tiling, input) => {
    const codes = typeof input === "function" ? input() : input;
    const expected = vector(file);
    expectSameBytes(packTl1(codes, n, n, tiling), expected);
    expectSameCodes(unpackTl1(expected, n, n, tiling), codes);
  });

  const tl2Cases: [string, number, number, Tiling, () => Int8Array][] = [
    ["bitnet/tl2_256x256_BM128_BK96_bm32.bin", 256, 256, { BM: 128, BK: 96, bm: 32 }, () => codes256],
    ["bitnet/tl2_128x384_BM64_BK96_bm32.bin", 128, 384, { BM: 64, BK: 96, bm: 32 }, () => i8(vector("bitnet/ternary_128x384_seed777.i8"))],
    ["bitnet/tl2_3200x3200_BM320_BK96_bm32_seed4242.bin", 3200, 3200, { BM: 320, BK: 96, bm: 32 }, () => lcgTernary(4242, 3200, 3200)],
  ];
  it.each(tl2Cases)("TL2 %s", (file, M, K, tiling, input) => {
    const codes = input();
    const expected = vector(file);
    expectSameBytes(packTl2(codes, M, K, tiling), expected);
    expectSameCodes(unpackTl2(expected, M, K, tiling), codes);
  });

  it("the 1536 and 3200 presets are the tilings b158 picks for those shapes", () => {
    const tl1 = checkEligibility("tl1", [1536, 1536]);
    expect(tl1.eligible && tl1.params).toMatchObject({ BM: 128, BK: 64, bm: 64, tilingSource: "preset" });
    const tl2 = checkEligibility("tl2", [3200, 3200]);
    expect(tl2.eligible && tl2.params).toMatchObject({ BM: 320, BK: 96, bm: 32, tilingSource: "preset" });
    expect(tl2.eligible && tl2.payloadBytes).toBe(vector("bitnet/tl2_3200x3200_BM320_BK96_bm32_seed4242.bin").byteLength);
  });

  describe.each([
    ["tq2_0", packTq2_0, unpackTq2_0],
    ["tq1_0", packTq1_0, unpackTq1_0],
  ] as const)("%s", (layout, pack, unpack) => {
    it("per-tensor scale: the float input read as stored gives llama.cpp's bytes", () => {
      const { codes, scale } = readStored(weights256, "F32", [256, 256]);
      const expected = vector(`tq/${layout}_256x256.bin`);
      expectSameBytes(pack(codes, 256, 256, scale as number), expected);
      const back = unpack(expected, 256, 256);
      expect(back.codes).toEqual(codes256);
      expect(new Set(back.scales)).toEqual(new Set([Math.fround(SCALE)]));
    });

    it("an all-zero block gets d = 0", () => {
      const weights = vector("tq/weights_256x256_zero_row7.f32");
      const { codes, scale } = readStored(weights, "F32", [256, 256]);
      expect(scale).toBe(SCALE);
      const expected = vector(`tq/${layout}_256x256_zero_row7.bin`);
      expectSameBytes(pack(codes, 256, 256, scale as number), expected);
      expect(unpack(expected, 256, 256).scales[7]).toBe(0);
    });

    it("per-block scales (row r scaled by (r+1)/1024): read as stored, detected per row, packed through the codec", () => {
      const bytes = vector("tq/weights_256x256_rowscaled.f32");
      const weights = f32(bytes);
      const codes = Int8Array.from(weights, (w) => Math.sign(w));
      const scales = Float32Array.from({ length: 256 }, (_, r) => (r + 1) / 1024);
      const expected = vector(`tq/${layout}_256x256_rowscaled.bin`);
      expectSameBytes(pack(codes, 256, 256, scales), expected);
      expect(unpack(expected, 256, 256).codes).toEqual(codes);
      const stored = readStored(bytes, "F32", [256, 256]);
      expect(stored.codes).toEqual(codes);
      expect(stored.scale).toEqual({ groupSize: 256, values: scales });
      expectSameBytes(packLayout({ layout, blockSize: 256 }, stored.codes, [256, 256], stored.scale), expected);
    });
  });
  describe("q2_0 (mainline llama.cpp's quantize_q2_0 on ternary x scale input)", () => {
    /** codes x (1 + g % mod) / 1024 for group g (row-major over [M, K / G]): the manifest's per-group inputs. */
    const grouped = (codes: Int8Array, K: number, G: number, mod: number): { bytes: Uint8Array; scale: GroupScales } => {
      const values = Float32Array.from({ length: codes.length / G }, (_, g) => ((g % mod) + 1) / 1024);
      const weights = Float32Array.from(codes, (c, i) => c * values[Math.floor(i / G)]!);
      expect(K % G).toBe(0);
      return { bytes: new Uint8Array(weights.buffer), scale: { groupSize: G, values } };
    };
    const codes320 = lcgTernary(320, 64, 320);
    const cases: [string, number, number, () => Uint8Array, number | GroupScales][] = [
      ["q2_0_256x256.bin", 256, 256, () => weights256, SCALE],
      ["q2_0_256x256_zero_row7.bin", 256, 256, () => vector("tq/weights_256x256_zero_row7.f32"), SCALE],
      ["q2_0_256x256_rowscaled.bin", 256, 256, () => vector("tq/weights_256x256_rowscaled.f32"), { groupSize: 256, values: Float32Array.from({ length: 256 }, (_, r) => (r + 1) / 1024) }],
      ["q2_0_256x256_g64.bin", 256, 256, () => grouped(codes256, 256, 64, 97).bytes, grouped(codes256, 256, 64, 97).scale],
      ["q2_0_256x256_g128.bin", 256, 256, () => grouped(codes256, 256, 128, 89).bytes, grouped(codes256, 256, 128, 89).scale],
      ["q2_0_64x320.bin", 64, 320, () => new Uint8Array(Float32Array.from(codes320, (c) => c * SCALE).buffer), SCALE],
      ["q2_0_64x320_g64.bin", 64, 320, () => grouped(codes320, 320, 64, 97).bytes, grouped(codes320, 320, 64, 97).scale],
    ];
    it.each(cases)("%s: read as stored (granularity detected), packed byte for byte", (file, M, K, input, scale) => {
      const expected = vector(`q2_0/${file}`);
      const stored = readStored(input(), "F32", [M, K]);
      expect(stored.scale).toEqual(scale);
      expectSameBytes(packLayout({ layout: "q2_0", blockSize: 64 }, stored.codes, [M, K], stored.scale), expected);
      const back = unpackQ2_0(expected, M, K);
      expectSameCodes(back.codes, stored.codes);
      if (typeof scale === "number") expectSameBytes(packQ2_0(stored.codes, M, K, scale), expected);
    });

    it("an all-zero block gets d = 0, the others d = f16(scale) first in each 18-byte block", () => {
      const back = unpackQ2_0(vector("q2_0/q2_0_256x256_zero_row7.bin"), 256, 256);
      expect(Array.from(back.scales.subarray(7 * 4, 8 * 4))).toEqual([0, 0, 0, 0]);
      expect(new Set(back.scales.subarray(0, 7 * 4))).toEqual(new Set([SCALE]));
      expect(Array.from(vector("q2_0/q2_0_256x256.bin").subarray(0, 2))).toEqual([0xa0, 0x2a]); // f16 53/1024, little-endian
    });
  });
});
