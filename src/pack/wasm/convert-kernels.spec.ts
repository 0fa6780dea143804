import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { B158Error } from "../../errors.js";
import { checkPacked } from "../../convert/task.js";
import { countNonFinite } from "../../convert/payload-scan.js";
import { decodeWritten, payloadBytesOf, RangePacker, rangeRows, sameBytes } from "../../convert/row-packer.js";
import { packLayout } from "../codec.js";
import { toBf16Bits, toF16Bits } from "../float16.js";
import { unpackHfPacked, unpackHfRows } from "../hf-packed.js";
import { checkEligibility, tl1TilingProblem, tl2TilingProblem, type LayoutId, type LayoutParams } from "../layouts.js";
import { readStored } from "../stored.js";
import { AbsmeanAccumulator, type LatentDtype } from "../ternarize.js";
import { tl2RegionBytes } from "../layouts.js";
import { Arena, convertKernelsKind, type Tl2Regions, type WasmKernels } from "./kernels.js";
import { lcgTernary } from "../../../test/support/vector-lcg.js";

/**
 * The converter's WebAssembly kernels (gen-convert.ts) against the TypeScript packers and passes
 * they stand in for: byte for byte on upstream's golden vectors, and on random shapes and values
 * (fast-check). `npm test` builds the module first; without it these tests fail rather than
 * compare TypeScript with itself.
 */
const VECTORS = fileURLToPath(new URL("../../../test/vectors/", import.meta.url));
const vector = (path: string): Uint8Array => new Uint8Array(readFileSync(VECTORS + path));
const SCALE = 53 / 1024;

/** One arena with the module, and the kernel calls it served (to prove the WebAssembly path ran). */
function wasmArena(): { arena: Arena; kernels: WasmKernels; calls: Map<string, number> } {
  const arena = Arena.create();
  expect(arena.kernels, "dist/pack/wasm/convert-simd128.wasm is missing: run npm run build").toBeDefined();
  const calls = new Map<string, number>();
  const target = arena.kernels!;
  const kernels = new Proxy(target, {
    get(t, prop, receiver) {
      const value = Reflect.get(t, prop, receiver) as unknown;
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        if (prop !== "holds") calls.set(String(prop), (calls.get(String(prop)) ?? 0) + 1);
        return (value as (...a: unknown[]) => unknown).apply(t, args);
      };
    },
  });
  return { arena, kernels, calls };
}

/** `bytes` copied into views of the arena's memory (sizes in bytes, in order); extra views for outputs. */
function place(arena: Arena, inputs: readonly Uint8Array[], outputs: readonly number[] = []): Uint8Array[] {
  const views = arena.carve(...inputs.map((b) => b.byteLength), ...outputs);
  inputs.forEach((b, i) => views[i]!.set(b));
  return views;
}

const i8 = (b: Uint8Array) => new Int8Array(b.buffer, b.byteOffset, b.byteLength);
const u8 = (c: Int8Array) => new Uint8Array(c.buffer, c.byteOffset, c.byteLength);

/** Packs `codes` range by range as the converter does: in WebAssembly when `kernels` is given (views in the arena), else in TypeScript. */
function packByRanges(params: LayoutParams, codes: Int8Array, shape: readonly [number, number], scale: number, rangeCodes: number, wasm?: ReturnType<typeof wasmArena>) {
  const [M, K] = shape;
  const rows = Math.min(M, rangeRows(params, K, rangeCodes));
  const payloadBytes = payloadBytesOf(params, shape);
  let packer: RangePacker;
  let input: Int8Array;
  if (wasm) {
    const [c, payload, scratch] = place(wasm.arena, [u8(codes)], [payloadBytes, rows * K]);
    input = i8(c!);
    packer = new RangePacker(params, shape, scale, payload!.fill(0xa5), i8(scratch!), wasm.kernels);
  } else {
    input = codes;
    packer = new RangePacker(params, shape, scale, new Uint8Array(payloadBytes).fill(0x5a), new Int8Array(rows * K));
  }
  for (let row = 0; row < M; row += rows) packer.packRows(input.subarray(row * K, Math.min(M, row + rows) * K));
  const { payload, check } = packer.finish();
  return { payload: payload.slice(), check };
}

function lcgCodes(n: number, seed: number, zeroRows = 0, K = 1): Int8Array {
  let s = seed >>> 0;
  const codes = Int8Array.from({ length: n }, () => (((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 16) % 3) - 1);
  codes.fill(0, 0, Math.min(n, zeroRows * K)); // leading all-zero rows: TQ's embedded d comes from a later block
  return codes;
}

function expectSameBytes(actual: Uint8Array, expected: Uint8Array): void {
  expect(actual.byteLength).toBe(expected.byteLength);
  const at = actual.findIndex((b, i) => b !== expected[i]);
  expect(at, `first difference at byte ${at}`).toBe(-1);
}

describe("converter kernels in WebAssembly", () => {
  it("are built and loaded", () => {
    expect(convertKernelsKind()).toBe("wasm-simd128");
  });

  describe("golden vectors, packed in WebAssembly range by range", () => {
    const codes256 = i8(vector("bitnet/ternary_256x256.i8"));
    it.each([
      ["bitnet/i2s_x86_256x256.bin", { layout: "i2_s", blockSize: 128, variant: "x86" }],
      ["bitnet/i2s_arm_256x256.bin", { layout: "i2_s", blockSize: 64, variant: "arm" }],
    ] as const)("I2_S %s", (file, params) => {
      const wasm = wasmArena();
      const { payload, check } = packByRanges(params, codes256, [256, 256], SCALE, 64 * 256, wasm);
      expectSameBytes(payload, vector(file));
      expect(check).toEqual({ nonzero: true, roundTrips: true, embeddedScale: Math.fround(SCALE) });
      expect(wasm.calls.get("packI2s")).toBe(4);
      expect(wasm.calls.get("checkI2s")).toBe(4);
    });

    it.each([
      ["tq/tq2_0_256x256.bin", "bitnet/weights_256x256.f32", "tq2_0", 256, 256],
      ["tq/tq2_0_256x256_zero_row7.bin", "tq/weights_256x256_zero_row7.f32", "tq2_0", 256, 256],
      ["tq/tq1_0_256x256.bin", "bitnet/weights_256x256.f32", "tq1_0", 256, 256],
      ["tq/tq1_0_256x256_zero_row7.bin", "tq/weights_256x256_zero_row7.f32", "tq1_0", 256, 256],
      ["q2_0/q2_0_256x256.bin", "bitnet/weights_256x256.f32", "q2_0", 256, 256],
      ["q2_0/q2_0_256x256_zero_row7.bin", "tq/weights_256x256_zero_row7.f32", "q2_0", 256, 256],
    ] as const)("%s", (file, weights, layout, M, K) => {
      const stored = readStored(vector(weights), "F32", [M, K]);
      const params: LayoutParams = layout === "q2_0" ? { layout, blockSize: 64 } : { layout, blockSize: 256 };
      const method = { q2_0: "packQ2_0", tq1_0: "packTq1_0", tq2_0: "packTq2_0" }[layout];
      const wasm = wasmArena();
      const { payload, check } = packByRanges(params, stored.codes, [M, K], stored.scale as number, 48 * K, wasm);
      expectSameBytes(payload, vector(file));
      expect(check.roundTrips).toBe(true);
      expect(wasm.calls.get(method)).toBe(Math.ceil(M / 48));
    });

    it.each([
      ["bitnet/tl1_256x256_BM128_BK64_bm32.bin", "tl1", 256, 256, { BM: 128, BK: 64, bm: 32 }, () => codes256],
      ["bitnet/tl1_256x256_BM256_BK128_bm64.bin", "tl1", 256, 256, { BM: 256, BK: 128, bm: 64 }, () => codes256],
      ["bitnet/tl1_1536x1536_BM128_BK64_bm64_seed4242.bin", "tl1", 1536, 1536, { BM: 128, BK: 64, bm: 64 }, () => lcgTernary(4242, 1536, 1536)],
      ["bitnet/tl2_256x256_BM128_BK96_bm32.bin", "tl2", 256, 256, { BM: 128, BK: 96, bm: 32 }, () => codes256],
      ["bitnet/tl2_128x384_BM64_BK96_bm32.bin", "tl2", 128, 384, { BM: 64, BK: 96, bm: 32 }, () => i8(vector("bitnet/ternary_128x384_seed777.i8"))],
      ["bitnet/tl2_3200x3200_BM320_BK96_bm32_seed4242.bin", "tl2", 3200, 3200, { BM: 320, BK: 96, bm: 32 }, () => lcgTernary(4242, 3200, 3200)],
    ] as const)("%s", (file, layout, M, K, tiling, codes) => {
      const wasm = wasmArena();
      const { payload, check } = packByRanges({ layout, tilingSource: "preset", ...tiling }, codes(), [M, K], SCALE, 1, wasm);
      expectSameBytes(payload, vector(file));
      expect(check).toEqual({ nonzero: true, roundTrips: true, embeddedScale: undefined });
      const method = layout === "tl1" ? "packTl1" : "packTl2";
      expect(wasm.calls.get(method)).toBe(M / tiling.BM);
    });

    it("q2_0 64x320 (K not a multiple of 256)", () => {
      const stored = readStored(new Uint8Array(Float32Array.from(lcgTernary(320, 64, 320), (c) => c * SCALE).buffer), "F32", [64, 320]);
      const { payload } = packByRanges({ layout: "q2_0", blockSize: 64 }, stored.codes, [64, 320], stored.scale as number, 7 * 320, wasmArena());
      expectSameBytes(payload, vector("q2_0/q2_0_64x320.bin"));
    });
  });

  describe("the same payload and check as the TypeScript packers, on random shapes", () => {
    const layouts: [LayoutId, Partial<Record<"i2sVariant", "x86" | "arm">>][] = [
      ["i2_s", { i2sVariant: "x86" }],
      ["i2_s", { i2sVariant: "arm" }],
      ["tq2_0", {}],
      ["tq1_0", {}],
      ["q2_0", {}],
      ["tl1", {}],
      ["tl2", {}],
    ];
    it.each(layouts)("%s %o", (layout, options) => {
      const wasm = wasmArena();
      fc.assert(
        fc.property(
          fc.constantFrom(64, 128, 192, 256, 320, 448, 640),
          fc.constantFrom(64, 256, 320, 384, 512, 768, 1280),
          fc.integer({ min: 0, max: 700 }),
          fc.integer({ min: 1, max: 200_000 }),
          fc.integer(),
          fc.constantFrom(0.0123, 1e-9, 3.5),
          (M, K, zeroRows, rangeCodes, seed, scale) => {
            const eligibility = checkEligibility(layout, [M, K], options);
            fc.pre(eligibility.eligible);
            const params = (eligibility as { params: LayoutParams }).params;
            const codes = lcgCodes(M * K, seed, zeroRows, K);
            const refused = catchCode(() => packLayout(params, codes, [M, K], scale));
            if (refused !== undefined) {
              // a scale the layout cannot store: the same error either way
              expect(catchCode(() => packByRanges(params, codes, [M, K], scale, rangeCodes))).toBe(refused);
              expect(catchCode(() => packByRanges(params, codes, [M, K], scale, rangeCodes, wasm))).toBe(refused);
              return;
            }
            const whole = packLayout(params, codes, [M, K], scale);
            const ts = packByRanges(params, codes, [M, K], scale, rangeCodes);
            const inWasm = packByRanges(params, codes, [M, K], scale, rangeCodes, wasm);
            expectSameBytes(ts.payload, whole);
            expectSameBytes(inWasm.payload, whole);
            const expected = checkPacked(params, whole, codes, [M, K]);
            expect(ts.check).toEqual(expected);
            expect(inWasm.check).toEqual(expected);
          },
        ),
        { numRuns: 30 },
      );
      expect(wasm.calls.size).toBeGreaterThan(0);
    });

    it.each([
      [{ layout: "i2_s", blockSize: 128, variant: "x86" }, 4, 256, 700],
      [{ layout: "tq2_0", blockSize: 256 }, 4, 256, 700],
      [{ layout: "tq1_0", blockSize: 256 }, 4, 256, 700],
      [{ layout: "q2_0", blockSize: 64 }, 4, 256, 700],
      [{ layout: "tl1", tilingSource: "computed", BM: 64, BK: 64, bm: 64 }, 128, 256, 40 * 256 + 77],
      [{ layout: "tl2", tilingSource: "computed", BM: 32, BK: 96, bm: 32 }, 64, 256, 40 * 256 + 77], // a triplet column
      [{ layout: "tl2", tilingSource: "computed", BM: 32, BK: 96, bm: 32 }, 64, 256, 40 * 256 + 200], // the tail
    ] as const)("a code outside -1..1 raises the TypeScript packer's E_NOT_TERNARY: %o [%i, %i]", (params, M, K, at) => {
      for (const bad of [2, -2, 127, -128]) {
        const codes = lcgCodes(M * K, 9);
        codes[at] = bad;
        codes[at + 3 * K] = 5; // a later one: the error names the first
        const ts = catchError(() => packByRanges(params, codes, [M, K], 0.5, 1024));
        expect(ts).toMatch(/^E_NOT_TERNARY: value -?\d+ at \[\d+, \d+\]/);
        expect(catchError(() => packByRanges(params, codes, [M, K], 0.5, 1024, wasmArena()))).toBe(ts);
      }
    });
  });

  describe("the decode check finds what decoding finds", () => {
    it.each([
      [{ layout: "i2_s", blockSize: 128, variant: "x86" }, 0, "checkI2s"],
      [{ layout: "i2_s", blockSize: 64, variant: "arm" }, 0, "checkI2s"],
      [{ layout: "tq2_0", blockSize: 256 }, 66, "checkTq2_0"],
      [{ layout: "tq1_0", blockSize: 256 }, 54, "checkTq1_0"],
      [{ layout: "q2_0", blockSize: 64 }, 18, "checkQ2_0"],
    ] as const)("%o: any damaged byte", (params, blockBytes, method) => {
      const { arena, kernels } = wasmArena();
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 12 }), fc.integer(), fc.nat(), fc.integer({ min: 1, max: 255 }), (rows, seed, at, flip) => {
          const K = 256;
          const codes = lcgCodes(rows * K, seed);
          const whole = packLayout(params, codes, [rows, K], 0.25);
          const body = rows * (params.layout === "i2_s" ? K / 4 : (K / params.blockSize) * blockBytes);
          const damaged = whole.slice();
          const offset = at % body;
          // the f16 d is not a code: damage code bytes only
          const dAt = params.layout === "tq2_0" ? 64 : params.layout === "tq1_0" ? 52 : 0;
          fc.pre(blockBytes === 0 || (offset % blockBytes !== dAt && offset % blockBytes !== dAt + 1));
          damaged[offset]! ^= flip;
          const decoded = decodeWritten(params, damaged, [rows, K]);
          const roundTrips = decoded !== undefined && sameBytes(decoded.codes, codes);
          const [p, c] = place(arena, [damaged.subarray(0, body), u8(codes)]);
          const bits = method === "checkI2s" ? kernels.checkI2s(p!, i8(c!), (params as { blockSize: 128 | 64 }).blockSize) : method === "checkTq2_0" ? kernels.checkTq2_0(p!, i8(c!)) : method === "checkTq1_0" ? kernels.checkTq1_0(p!, i8(c!)) : kernels.checkQ2_0(p!, i8(c!));
          expect(!bits.invalid && !bits.differs).toBe(roundTrips);
          expect(bits.invalid).toBe(decoded === undefined);
          expect(bits.nonzero).toBe(codes.some((v) => v !== 0));
        }),
        { numRuns: 200 },
      );
    });
  });

  describe("TL1 and TL2: every tiling, and the decode check on damaged regions", () => {
    type TlParams = Extract<LayoutParams, { layout: "tl1" | "tl2" }>;
    interface TlCase {
      readonly params: TlParams;
      readonly shape: [number, number];
    }
    /** A TL1 tiling (bm 32 or 64, BM up to 5 bm, BK up to 128) and a shape of 1-2 row tiles by 1-3 column tiles. */
    const tl1Cases = fc
      .record({ bm: fc.constantFrom(32, 64), bmSteps: fc.integer({ min: 1, max: 5 }), bkSteps: fc.integer({ min: 1, max: 32 }), rowTiles: fc.integer({ min: 1, max: 2 }), colTiles: fc.integer({ min: 1, max: 3 }) })
      .map(({ bm, bmSteps, bkSteps, rowTiles, colTiles }): TlCase => {
        const by = 256 / bm;
        const [BM, BK] = [bm * bmSteps, by * Math.min(bkSteps, 128 / by)];
        return { params: { layout: "tl1", tilingSource: "kernel-config", BM, BK, bm }, shape: [BM * rowTiles, BK * colTiles] };
      });
    /** A TL2 tiling (BM up to 128, BK any multiple of 24 up to 264) and a shape with a tail of 0..256 columns (under BK), K >= 256. */
    const tl2Cases = fc
      .record({ bmSteps: fc.integer({ min: 1, max: 4 }), bkSteps: fc.integer({ min: 1, max: 11 }), tailSteps: fc.integer({ min: 0, max: 8 }), rowTiles: fc.integer({ min: 1, max: 2 }), colTiles: fc.integer({ min: 1, max: 3 }) })
      .map(({ bmSteps, bkSteps, tailSteps, rowTiles, colTiles }): TlCase => {
        const [BM, BK] = [32 * bmSteps, 24 * bkSteps];
        const tail = 32 * (tailSteps % (Math.floor((BK - 1) / 32) + 1));
        const K = BK * Math.max(colTiles, Math.ceil((256 - tail) / BK)) + tail;
        return { params: { layout: "tl2", tilingSource: "kernel-config", BM, BK, bm: 32 }, shape: [BM * rowTiles, K] };
      });
    const casesOf = (layout: "tl1" | "tl2") => (layout === "tl1" ? tl1Cases : tl2Cases);
    const tensors = fc.constantFrom("random", "zero", "plus", "minus", "zero rows");

    function tensor(kind: string, [M, K]: readonly [number, number], seed: number): Int8Array {
      if (kind === "random" || kind === "zero rows") return lcgCodes(M * K, seed, kind === "zero rows" ? (seed >>> 3) % M : 0, K);
      return new Int8Array(M * K).fill(kind === "plus" ? 1 : kind === "minus" ? -1 : 0);
    }

    /** TL's regions of a whole-tensor payload: TL1's one, TL2's A, S and B (not its padding). */
    function regionsOf({ params, shape: [M, K] }: TlCase, payload: Uint8Array): Uint8Array[] {
      if (params.layout === "tl1") return [payload.subarray(0, (M * K) / 4)];
      let at = 0;
      return tl2RegionBytes(M, K, params).map((length) => payload.subarray(at, (at += length)));
    }

    /** The kernels' check of `payload` (a whole tensor's) against `codes`, from views of the arena. */
    function wasmCheck(arena: Arena, kernels: WasmKernels, c: TlCase, payload: Uint8Array, codes: Int8Array) {
      const [codeView, ...regions] = place(arena, [u8(codes), ...regionsOf(c, payload)]);
      const K = c.shape[1];
      return c.params.layout === "tl1" ? kernels.checkTl1(regions[0]!, i8(codeView!), K, c.params) : kernels.checkTl2(regions as unknown as Tl2Regions, i8(codeView!), K, c.params);
    }

    /** What the TypeScript check finds: invalid (E_PACKED_CODE), round-trips, nonzero. */
    function tsCheck(c: TlCase, payload: Uint8Array, codes: Int8Array) {
      const decoded = decodeWritten(c.params, payload, c.shape);
      return { invalid: decoded === undefined, roundTrips: decoded !== undefined && sameBytes(decoded.codes, codes), nonzero: codes.some((v) => v !== 0) };
    }

    function expectSameCheck(flags: { invalid: boolean; differs: boolean; nonzero: boolean }, expected: ReturnType<typeof tsCheck>): void {
      expect({ invalid: flags.invalid, roundTrips: !flags.invalid && !flags.differs, nonzero: flags.nonzero }).toEqual(expected);
    }

    it.each(["tl1", "tl2"] as const)("%s: the TypeScript packer's bytes and check, on every tiling, for random, zero, all +1 and all -1 tensors", (layout) => {
      const { arena, kernels } = wasmArena();
      fc.assert(
        fc.property(casesOf(layout), tensors, fc.integer(), (c, kind, seed) => {
          const { params, shape } = c;
          const [M, K] = shape;
          expect((layout === "tl1" ? tl1TilingProblem : tl2TilingProblem)(M, K, params)).toBeUndefined();
          const codes = tensor(kind, shape, seed);
          const whole = packLayout(params, codes, shape, SCALE);
          const expected = regionsOf(c, whole);
          const [codeView, ...out] = place(arena, [u8(codes)], expected.map((r) => r.byteLength));
          out.forEach((o) => o!.fill(0xa5)); // every byte must be written
          const ternary = params.layout === "tl1" ? kernels.packTl1(i8(codeView!), K, params, out[0]!) : kernels.packTl2(i8(codeView!), K, params, out as unknown as Tl2Regions);
          expect(ternary).toBe(true);
          out.forEach((o, i) => expectSameBytes(o!, expected[i]!));
          const flags = params.layout === "tl1" ? kernels.checkTl1(out[0]!, i8(codeView!), K, params) : kernels.checkTl2(out as unknown as Tl2Regions, i8(codeView!), K, params);
          expectSameCheck(flags, tsCheck(c, whole, codes));
        }),
        { numRuns: 60 },
      );
    });

    it.each(["tl1", "tl2"] as const)("%s: range by range through RangePacker, the whole tensor's payload and check, on every tiling", (layout) => {
      const wasm = wasmArena();
      fc.assert(
        fc.property(casesOf(layout), tensors, fc.integer(), fc.integer({ min: 1, max: 100_000 }), (c, kind, seed, rangeCodes) => {
          const codes = tensor(kind, c.shape, seed);
          const whole = packLayout(c.params, codes, c.shape, SCALE);
          const ranges = c.shape[0] / Math.min(c.shape[0], rangeRows(c.params, c.shape[1], rangeCodes));
          const before = wasm.calls.get(layout === "tl1" ? "packTl1" : "packTl2") ?? 0;
          const inWasm = packByRanges(c.params, codes, c.shape, SCALE, rangeCodes, wasm);
          expectSameBytes(inWasm.payload, whole);
          expect(inWasm.check).toEqual(checkPacked(c.params, whole, codes, c.shape));
          expect(wasm.calls.get(layout === "tl1" ? "packTl1" : "packTl2")! - before).toBe(ranges);
        }),
        { numRuns: 40 },
      );
    });

    it.each([
      [{ layout: "tl1", tilingSource: "kernel-config", BM: 64, BK: 48, bm: 32 }, [128, 256]], // K % BK != 0
      [{ layout: "tl2", tilingSource: "kernel-config", BM: 32, BK: 72, bm: 32 }, [64, 256]], // a 40-column tail
    ] as const)("a tiling that does not fit the shape: the TypeScript packer's E_TILING (%o)", (params, shape) => {
      const codes = lcgCodes(shape[0] * shape[1], 3);
      const ts = catchError(() => packByRanges(params, codes, shape, SCALE, 1));
      expect(ts).toMatch(/^E_TILING: /);
      const wasm = wasmArena();
      expect(catchError(() => packByRanges(params, codes, shape, SCALE, 1, wasm))).toBe(ts);
      expect(wasm.calls.size).toBe(0);
    });

    it.each(["tl1", "tl2"] as const)("%s: any damaged byte of any region, the TypeScript decoder's verdict", (layout) => {
      const { arena, kernels } = wasmArena();
      fc.assert(
        fc.property(casesOf(layout), tensors, fc.integer(), fc.nat(), fc.integer({ min: 1, max: 255 }), (c, kind, seed, at, flip) => {
          const codes = tensor(kind, c.shape, seed);
          const damaged = packLayout(c.params, codes, c.shape, SCALE);
          const body = regionsOf(c, damaged).reduce((sum, r) => sum + r.byteLength, 0);
          damaged[at % body]! ^= flip;
          expectSameCheck(wasmCheck(arena, kernels, c, damaged, codes), tsCheck(c, damaged, codes));
        }),
        { numRuns: 300 },
      );
    });

    describe("each region's damage, as TypeScript decoding finds it", () => {
      const tl1: TlCase = { params: { layout: "tl1", tilingSource: "kernel-config", BM: 64, BK: 64, bm: 64 }, shape: [128, 128] };
      // K3 = 192 (A: 32 x 192 / 6 = 1024 bytes, S: 256 bytes), K2 = 64 (B: 512 bytes)
      const tl2: TlCase = { params: { layout: "tl2", tilingSource: "kernel-config", BM: 32, BK: 96, bm: 32 }, shape: [32, 256] };
      const [A, S, B] = [0, 1024, 1280];
      /** Packs `kind`, damages byte `at` of the payload with `change`, and checks in both languages. */
      function damage(c: TlCase, kind: string, at: number, change: (byte: number) => number) {
        const { arena, kernels } = wasmArena();
        const codes = tensor(kind, c.shape, 7);
        const payload = packLayout(c.params, codes, c.shape, SCALE);
        payload[at] = change(payload[at]!);
        const flags = wasmCheck(arena, kernels, c, payload, codes);
        expectSameCheck(flags, tsCheck(c, payload, codes));
        return flags;
      }
      /** The high nibble's pair index moved to the next one in 0..8: still valid, other codes. */
      const nextPairIndex = (b: number) => ((((b >>> 4) + 1) % 9) << 4) | (b & 15);
      const invalid = { invalid: true, differs: expect.any(Boolean) as boolean, nonzero: true };
      const differs = { invalid: false, differs: true, nonzero: true };

      it("TL1: a nibble over 8 is invalid; another pair index differs", () => {
        for (const at of [0, 17, 4095]) {
          expect(damage(tl1, "random", at, (b) => (b & 0x0f) | 0x90)).toEqual(invalid);
          expect(damage(tl1, "random", at, (b) => (b & 0xf0) | 0x0f)).toEqual(invalid);
          expect(damage(tl1, "random", at, nextPairIndex)).toEqual(differs);
        }
        expect(damage(tl1, "zero", 100, () => 0x45)).toEqual({ invalid: false, differs: true, nonzero: false });
      });

      it("TL2's A: a magnitude over 13 is invalid; another magnitude differs", () => {
        for (const at of [A, A + 9, S - 1]) {
          expect(damage(tl2, "random", at, (b) => (b & 0x0f) | 0xe0)).toEqual(invalid);
          expect(damage(tl2, "random", at, (b) => (b & 0xf0) | 0x0f)).toEqual(invalid);
          // all +1: every triplet is v = 13, positive (no sign bits)
          expect(damage(tl2, "plus", at, () => 0xdc)).toEqual(differs);
          expect(damage(tl2, "plus", at, () => 0x0d)).toEqual(differs);
        }
      });

      it("TL2's S: a flipped sign differs; a sign on a zero magnitude is invalid", () => {
        for (const at of [S, S + 1, S + 100, B - 1]) {
          for (const bit of [0, 3, 7]) {
            expect(damage(tl2, "plus", at, (b) => b ^ (1 << bit))).toEqual(differs);
            expect(damage(tl2, "minus", at, (b) => b ^ (1 << bit))).toEqual(differs);
            expect(damage(tl2, "zero", at, (b) => b ^ (1 << bit))).toEqual({ invalid: true, differs: false, nonzero: false });
          }
        }
      });

      it("TL2's B (the tail): a nibble over 8 is invalid; another pair index differs", () => {
        for (const at of [B, B + 33, B + 511]) {
          expect(damage(tl2, "random", at, (b) => (b & 0x0f) | 0x90)).toEqual(invalid);
          expect(damage(tl2, "random", at, (b) => (b & 0xf0) | 0x0c)).toEqual(invalid);
          expect(damage(tl2, "random", at, nextPairIndex)).toEqual(differs);
        }
      });
    });
  });

  describe("ternarization passes", () => {
    /** 16-bit weights of random magnitude around `mean`, with special patterns (Inf, NaN, subnormals, +-0) where asked. */
    const halves = (dtype: "BF16" | "F16", n: number, seed: number, specials: boolean): Uint8Array => {
      let s = seed >>> 0;
      const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
      const bits = (x: number) => (dtype === "BF16" ? toBf16Bits(x) : toF16Bits(x));
      const words = Uint16Array.from({ length: n }, () => {
        const r = next();
        if (specials && r < 0.02) return [0x8000, 0x0001, 0x8003, 0x03ff, dtype === "BF16" ? 0x007f : 0x03ff][Math.floor(next() * 5)]!;
        return bits((next() - 0.5) * 0.2 * (r < 0.5 ? 1 : 10));
      });
      return new Uint8Array(words.buffer);
    };

    it.each(["BF16", "F16", "F32"] as const)("%s: pass 1's scale and pass 2's codes, fed in any pieces", (dtype) => {
      const { arena, kernels, calls } = wasmArena();
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 300 }), fc.integer(), fc.boolean(), (n, pieceGroups, seed, specials) => {
          const bytes = dtype === "F32" ? new Uint8Array(Float32Array.from(lcgCodes(n, seed), (c, i) => c * (0.01 + (i % 17) / 1000)).buffer) : halves(dtype, n, seed, specials);
          const [inArena, out] = place(arena, [bytes], [n]);
          const run = (source: Uint8Array, codes: Int8Array, k?: WasmKernels) => {
            const accumulator = new AbsmeanAccumulator(dtype as LatentDtype, "t", k);
            const piece = 16 * pieceGroups;
            for (let at = 0; at < source.byteLength; at += piece) accumulator.addPiece(source.subarray(at, Math.min(source.byteLength, at + piece)), at + piece >= source.byteLength);
            const coder = accumulator.coder(k);
            let written = 0;
            for (let at = 0; at < source.byteLength; at += piece) written += coder.encode(source.subarray(at, Math.min(source.byteLength, at + piece)), codes, written);
            return { scale: coder.result(), written };
          };
          const ts = new Int8Array(n);
          const expected = run(bytes, ts);
          const actual = run(inArena!, i8(out!), kernels);
          expect(actual).toEqual(expected);
          expectSameBytes(out!, u8(ts));
        }),
        { numRuns: 60 },
      );
      expect(calls.get(dtype === "F32" ? "codeF32" : "codeHalves")).toBeGreaterThan(0);
      if (dtype !== "F32") expect(calls.get("absmeanHalves")).toBeGreaterThan(0);
    });

    it("F16 Inf or NaN: the same error as in TypeScript", () => {
      const { arena, kernels } = wasmArena();
      for (const special of [0x7c00, 0xfc00, 0x7e00]) {
        const words = new Uint16Array(1000).fill(toF16Bits(0.01));
        words[517] = special;
        const bytes = new Uint8Array(words.buffer);
        const [view] = place(arena, [bytes]);
        const message = (source: Uint8Array, k?: WasmKernels) => {
          try {
            new AbsmeanAccumulator("F16", "t", k).add(source);
          } catch (error) {
            return (error as B158Error).message;
          }
          return "no error";
        };
        expect(message(view!, kernels)).toBe(message(bytes));
        expect(message(bytes)).toMatch(/Inf|NaN/);
      }
    });
  });

  it("unpacking transformers' packed rows: the same codes, and code 3 found", () => {
    const { arena, kernels } = wasmArena();
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 70 }), fc.integer({ min: 0, max: 3 }), fc.integer(), fc.boolean(), (packedRows, cols, short, seed, three) => {
        const outRows = Math.max(1, packedRows * 4 - short);
        let s = seed >>> 0;
        const packed = Uint8Array.from({ length: packedRows * cols }, () => {
          let b = 0;
          for (let i = 0; i < 4; i++) b |= ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 16) % 3 << (2 * i);
          return b;
        });
        if (three) packed[(s >>> 3) % packed.length]! |= 0x03 << (2 * Math.min(Math.floor((outRows - 1) / packedRows), (s >>> 7) % 4));
        const expected = catchCode(() => unpackHfPacked(packed, packedRows, cols, outRows));
        const [p, out] = place(arena, [packed], [outRows * cols]);
        const codes = i8(out!);
        let ok = true;
        for (let row = 0; row < outRows; row += 3) ok = unpackHfRows(p!, packedRows, cols, row, codes.subarray(row * cols, Math.min(outRows, row + 3) * cols), kernels) && ok;
        const tsCodes = new Int8Array(outRows * cols);
        let tsOk = true;
        for (let row = 0; row < outRows; row += 3) tsOk = unpackHfRows(packed, packedRows, cols, row, tsCodes.subarray(row * cols, Math.min(outRows, row + 3) * cols)) && tsOk;
        expect(ok).toBe(tsOk);
        expect(ok).toBe(expected === undefined);
        if (ok) {
          expectSameBytes(out!, u8(unpackHfPacked(packed, packedRows, cols, outRows)));
          expectSameBytes(u8(tsCodes), out!);
        }
      }),
      { numRuns: 200 },
    );
  });
});

/** "code: message" of the B158Error `run` throws. */
function catchError(run: () => unknown): string | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    return error instanceof B158Error ? `${error.code}: ${error.message}` : String(error);
  }
}

function catchCode(run: () => unknown): string | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    return error instanceof B158Error ? error.code : String(error);
  }
}

describe("NaN/Inf count in WebAssembly", () => {
  it.each(["f32", "f16", "bf16"] as const)("%s: the TypeScript count at any length and offset", (layout) => {
    const { arena, kernels } = wasmArena();
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600, size: "max" }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 40 }), (random, shift, specials) => {
        const bytes = random.slice();
        // exponent fields all ones here and there (Inf/NaN), and some one short of it
        for (let k = 0; bytes.length >= 4 && k < specials; k++) {
          const at = (k * 37 + shift * 11) % Math.max(1, bytes.length - 4);
          if (layout === "f32") bytes.set([0, 0, 0x80 | (k & 1 ? 0x7f : 0), 0x7f | (k & 2 ? 0x80 : 0)], at - (at % 4));
          else bytes.set([layout === "bf16" ? 0x80 : 0x00, layout === "bf16" ? 0x7f : 0x7c | (k & 1)], at - (at % 2));
        }
        const element = layout === "f32" ? 4 : 2;
        const whole = bytes.subarray(0, bytes.length - (bytes.length % element));
        const [view] = arena.carve(whole.length + 8);
        const placed = view!.subarray(shift * (element === 2 ? 2 : 0), shift * (element === 2 ? 2 : 0) + whole.length);
        placed.set(whole);
        expect(countNonFinite(placed, layout, kernels)).toBe(countNonFinite(whole, layout));
      }),
      { numRuns: 300 },
    );
  });
});
