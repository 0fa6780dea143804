import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { packI2S, unpackI2S } from "./i2s.js";
import { checkEligibility, type Tiling } from "./layouts.js";
import { ternarize } from "./ternarize.js";
import { packTl1, unpackTl1 } from "./tl1.js";
import { packTl2, unpackTl2 } from "./tl2.js";
import { packTq1_0, packTq2_0, unpackTq1_0, unpackTq2_0 } from "./tq.js";

/**
 * Byte-exact agreement with the upstream implementations' own outputs (test/vectors: bitnet.cpp's
 * C quantizer and Python transforms, llama.cpp's gguf-py quantizer). See test/vectors/README.md.
 */
const VECTORS = fileURLToPath(new URL("../../test/vectors/", import.meta.url));
const vector = (path: string): Uint8Array => new Uint8Array(readFileSync(VECTORS + path));
const SCALE = 53 / 1024;

/** The vectors' LCG, for the inputs not stored (seed 4242). */
function lcgTernary(seed: number, M: number, K: number): Int8Array {
  const out = new Int8Array(M * K);
  let s = seed;
  for (let i = 0; i < out.length; i++) {
    // mod 2^31 keeps only low bits, so 32-bit multiplication is exact here (a float64 product is not)
    s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff;
    out[i] = ((s >>> 16) % 3) - 1;
  }
  return out;
}

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
    for (const folder of ["bitnet", "tq"]) {
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
    expect(checked).toBe(18);
  });

  const codes256 = i8(vector("bitnet/ternary_256x256.i8"));
  const weights256 = vector("bitnet/weights_256x256.f32");

  it("the stored inputs are what the LCG generates (and the manifest's hash)", () => {
    expectSameCodes(lcgTernary(12345, 256, 256), codes256);
    const manifest = JSON.parse(readFileSync(VECTORS + "bitnet/manifest.json", "utf8"));
    expect(createHash("sha256").update(codes256).digest("hex")).toBe(manifest["ternary_256x256.i8"].sha256);
  });

  it("ternarizing the float input recovers the codes and the exact scale 53/1024", () => {
    const { codes, scale } = ternarize(weights256, "F32");
    expect(codes).toEqual(codes256);
    expect(scale.scale).toBe(SCALE);
    expect(scale.alreadyTernary).toBe(true);
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
    it("per-tensor scale: ternarized float input gives llama.cpp's bytes", () => {
      const { codes, scale } = ternarize(weights256, "F32");
      const expected = vector(`tq/${layout}_256x256.bin`);
      expectSameBytes(pack(codes, 256, 256, scale.scale), expected);
      const back = unpack(expected, 256, 256);
      expect(back.codes).toEqual(codes256);
      expect(new Set(back.scales)).toEqual(new Set([Math.fround(SCALE)]));
    });

    it("an all-zero block gets d = 0", () => {
      const weights = vector("tq/weights_256x256_zero_row7.f32");
      const { codes, scale } = ternarize(weights, "F32");
      const expected = vector(`tq/${layout}_256x256_zero_row7.bin`);
      expectSameBytes(pack(codes, 256, 256, scale.scale), expected);
      expect(unpack(expected, 256, 256).scales[7]).toBe(0);
    });

    it("per-block scales (row r scaled by (r+1)/1024)", () => {
      const weights = f32(vector("tq/weights_256x256_rowscaled.f32"));
      const codes = Int8Array.from(weights, (w) => Math.sign(w));
      const scales = Float32Array.from({ length: 256 }, (_, r) => (r + 1) / 1024);
      const expected = vector(`tq/${layout}_256x256_rowscaled.bin`);
      expectSameBytes(pack(codes, 256, 256, scales), expected);
      expect(unpack(expected, 256, 256).codes).toEqual(codes);
    });
  });
});
