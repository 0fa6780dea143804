import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { B158Error } from "../errors.js";
import { chooseEncoding, LAYOUTS, layoutsHolding, packLayout, unpackLayout } from "./codec.js";
import { fromF16Bits, toF16Bits } from "./float16.js";
import { formatKernelConfig, parseKernelConfig } from "./kernel-config.js";
import { checkEligibility, LAYOUT_IDS, SCALE_BLOCK, tl2PayloadBytes, tl2TilingProblem, type LayoutId, type LayoutParams, type Tiling } from "./layouts.js";
import { groupScalesFromBlocks, type GroupScales } from "./scales.js";

/** Ternary codes with a chosen density of zeros; density 1 gives an all-zero tensor. */
const codesArb = (n: number) =>
  fc.tuple(fc.integer(), fc.constantFrom(0, 0.33, 0.9, 1)).map(([seed, zeros]) => {
    let s = seed >>> 0;
    return Int8Array.from({ length: n }, () => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return (s >>> 8) / 2 ** 24 < zeros ? 0 : (s & 1) === 0 ? 1 : -1;
    });
  });

const scaleArb = fc.constantFrom(1e-5, 0.0517578125, 0.02, 1, 3.5, 1e-30, 3e38);

/** Random shapes each layout accepts, with its parameters. */
const shapes: Record<LayoutId, fc.Arbitrary<{ M: number; K: number; params: LayoutParams }>> = {
  i2_s: fc.tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 4 }), fc.constantFrom(128, 64) as fc.Arbitrary<128 | 64>).map(([M, blocks, blockSize]) => ({
    M,
    K: blocks * blockSize,
    params: { layout: "i2_s", blockSize, variant: blockSize === 128 ? "x86" : "arm" } as const,
  })),
  tq1_0: fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 })).map(([M, b]) => ({ M, K: 256 * b, params: { layout: "tq1_0", blockSize: 256 } as const })),
  tq2_0: fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 })).map(([M, b]) => ({ M, K: 256 * b, params: { layout: "tq2_0", blockSize: 256 } as const })),
  q2_0: fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 9 })).map(([M, b]) => ({ M, K: 64 * b, params: { layout: "q2_0", blockSize: 64 } as const })),
  tl1: fc
    .tuple(fc.constantFrom(32, 64), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 2 }))
    .map(([bm, a, b, c, d]) => {
      const BM = bm * a;
      const BK = (256 / bm) * c;
      return { M: BM * b, K: BK * d, params: { layout: "tl1", tilingSource: "computed", BM, BK, bm } as const };
    }),
  tl2: fc
    .tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 }), fc.constantFrom(24, 48, 96, 192), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 8 }))
    .map(([a, b, BK, n3, tailUnits]) => {
      const BM = 32 * a;
      const K = Math.max(n3, Math.ceil(256 / BK)) * BK + 32 * tailUnits;
      return { M: BM * b, K, params: { layout: "tl2", tilingSource: "computed", BM, BK, bm: 32 } as const };
    })
    .filter(({ M, K, params }) => tl2TilingProblem(M, K, params as Tiling) === undefined),
};

describe.each(Object.keys(shapes) as LayoutId[])("%s round trip", (layout) => {
  it("unpack(pack(t)) == t and the scale round-trips, for random eligible shapes", () => {
    fc.assert(
      fc.property(
        shapes[layout].chain((shape) => fc.tuple(fc.constant(shape), codesArb(shape.M * shape.K), scaleArb)),
        ([{ M, K, params }, codes, rawScale]) => {
          const scale = Math.fround(rawScale);
          const tq = layout === "tq1_0" || layout === "tq2_0" || layout === "q2_0";
          if (tq && (scale < 6e-8 || scale > 65504)) {
            if (codes.some((c) => c !== 0)) expect(() => packLayout(params, codes, [M, K], scale)).toThrow(B158Error);
            return;
          }
          const bytes = packLayout(params, codes, [M, K], scale);
          const fit = checkEligibility(layout, [M, K], layout === "tl1" || layout === "tl2" ? { tiling: params as Tiling } : { i2sVariant: (params as { variant?: "x86" | "arm" }).variant ?? "x86" });
          expect(fit.eligible && fit.payloadBytes).toBe(bytes.byteLength);
          const back = unpackLayout(params, bytes, [M, K]);
          expect(back.codes).toEqual(codes);
          if (layout === "i2_s") expect(back.scale).toBe(scale);
          if (tq) expect(back.scale).toBe(codes.some((c) => c !== 0) ? fromF16Bits(toF16Bits(scale)) : 0);
          if (params.layout === "tl2") {
            // everything after the A, S and B regions is the zero padding the kernels expect
            const tail = K % params.BK;
            const dataBytes = (M * (K - tail) * 5) / 24 + (M * tail) / 4;
            expect(bytes.byteLength).toBe(tl2PayloadBytes(M, K));
            expect(bytes.subarray(dataBytes).every((b) => b === 0)).toBe(true);
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe.each(["tq1_0", "tq2_0", "q2_0"] as const)("%s with group scales", (layout) => {
  const block = SCALE_BLOCK[layout]!;
  it("packs each block with its group's scale; the blocks give the group scales back (f16, 0 for all-zero groups)", () => {
    fc.assert(
      fc.property(
        fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 1, max: 4 })).chain(([M, groups, doublings, extra]) => {
          const G = block * 2 ** doublings;
          const K = G * groups * (layout === "q2_0" ? 1 : extra > 2 ? 2 : 1);
          return fc.tuple(fc.constant({ M, K, G }), codesArb(M * K), fc.array(fc.integer({ min: 1, max: 4000 }), { minLength: (M * K) / G, maxLength: (M * K) / G }));
        }),
        ([{ M, K, G }, codes, raw]) => {
          const params = { layout, blockSize: block } as LayoutParams;
          const scale: GroupScales = { groupSize: G, values: Float32Array.from(raw, (k) => fromF16Bits(toF16Bits(k / 4096))) };
          expect(checkEligibility(layout, [M, K], { groupSize: G }).eligible).toBe(true);
          const bytes = packLayout(params, codes, [M, K], scale);
          const back = unpackLayout(params, bytes, [M, K]);
          expect(back.codes).toEqual(codes);
          const groups = groupScalesFromBlocks(back.blockScales!, back.codes, M, K, block, G);
          expect("conflict" in groups).toBe(false);
          const expected = scale.values.map((s, g) => (codes.subarray(g * G, (g + 1) * G).some((c) => c !== 0) ? s : 0));
          expect((groups as GroupScales).values).toEqual(expected);
        },
      ),
      { numRuns: 40 },
    );
  });

  it(`holds groups of a multiple of ${block} only, and names the layouts that can hold the others`, () => {
    const K = 1024;
    expect(checkEligibility(layout, [4, K], { groupSize: K }).eligible).toBe(true);
    expect(checkEligibility(layout, [4, K], { groupSize: block / 2 })).toMatchObject({ eligible: false, rule: `G % ${block} == 0` });
    expect(layoutsHolding([32, 1024], 128)).toEqual(["q2_0"]);
    expect(layoutsHolding([32, 1024], 256)).toEqual(["tq1_0", "tq2_0", "q2_0"]);
    expect(layoutsHolding([32, 1024], undefined)).toEqual([...LAYOUT_IDS]);
  });
});

describe("the LAYOUTS registry", () => {
  it("lists every layout, packs like packLayout, and refuses another layout's parameters", () => {
    expect(Object.keys(LAYOUTS).sort()).toEqual([...LAYOUT_IDS].sort());
    const codes = Int8Array.from({ length: 2 * 256 }, (_, i) => (i % 3) - 1);
    for (const id of LAYOUT_IDS) {
      const fit = checkEligibility(id, [2, 256]);
      if (!fit.eligible) continue;
      const bytes = LAYOUTS[id].pack(codes, [2, 256], 0.25, fit.params);
      expect(bytes).toEqual(packLayout(fit.params, codes, [2, 256], 0.25));
      expect(LAYOUTS[id].unpack(bytes, [2, 256], fit.params).codes).toEqual(codes);
      expect(LAYOUTS[id].scaleInPayload).toBe(id !== "tl1" && id !== "tl2");
    }
    expect(() => LAYOUTS.tq2_0.pack(codes, [2, 256], 1, { layout: "i2_s", blockSize: 128, variant: "x86" })).toThrow(B158Error);
  });
});

describe("packers refuse bad input", () => {
  it("a non-ternary value is E_NOT_TERNARY with its position", () => {
    const codes = new Int8Array(256);
    codes[37] = 2;
    try {
      packLayout({ layout: "tq2_0", blockSize: 256 }, codes, [1, 256], 1);
      expect.unreachable();
    } catch (e) {
      expect((e as B158Error).code).toBe("E_NOT_TERNARY");
      expect((e as B158Error).details).toMatchObject({ row: 0, col: 37, value: 2 });
    }
  });

  it("TL2: every one of the 27 triplets round-trips, and a triplet index over 13 is E_PACKED_CODE", () => {
    const params = { layout: "tl2", tilingSource: "computed", BM: 32, BK: 96, bm: 32 } as const;
    const [M, K] = [32, 288];
    // row m holds triplets (m + j) mod 27 for j = 0..31: every triplet, in every position class
    const codes = new Int8Array(M * K);
    for (let m = 0; m < M; m++)
      for (let j = 0; j < K / 3; j++) {
        const v = ((m + j) % 27) - 13;
        const a = Math.round(v / 9);
        const b = Math.round((v - 9 * a) / 3);
        codes.set([a, b, v - 9 * a - 3 * b], m * K + 3 * j);
      }
    const payload = packLayout(params, codes, [M, K], 1);
    expect([...unpackLayout(params, payload, [M, K]).codes]).toEqual([...codes]);
    const bad = payload.slice();
    bad[5] = 0xe0; // the A region's first bytes: magnitude nibble 14
    expect(() => unpackLayout(params, bad, [M, K])).toThrow(expect.objectContaining({ code: "E_PACKED_CODE", message: expect.stringContaining("magnitude 14") }));
  });

  it("q2_0: code 3 (+2, legal in Q2_0 but not ternary) is E_PACKED_CODE naming the tensor and the position", () => {
    const params = { layout: "q2_0", blockSize: 64 } as const;
    const payload = packLayout(params, new Int8Array(2 * 128).fill(1), [2, 128], 0.5);
    payload[3 * 18 + 2 + 5] = 0b00110000; // block 3, byte 5: element 22 gets code 3
    try {
      unpackLayout(params, payload, [2, 128], undefined, { tensor: "model.layers.0.mlp.up_proj.weight" });
      expect.unreachable();
    } catch (e) {
      expect((e as B158Error).code).toBe("E_PACKED_CODE");
      expect((e as B158Error).message).toContain("model.layers.0.mlp.up_proj.weight");
      // block 3 is row 1's second block: byte 3 * 18 + 2 + 5, element 22 of it
      expect((e as B158Error).details).toMatchObject({ layout: "q2_0", byte: 3 * 18 + 2 + 5 });
      expect((e as B158Error).message).toContain("row 1, column 86");
    }
  });

  it("per-tensor layouts refuse group scales (E_LAYOUT_SCALES), never averaging them", () => {
    const scale: GroupScales = { groupSize: 128, values: new Float32Array(4).fill(0.5) };
    for (const layout of ["i2_s", "tl1", "tl2"] as const) {
      const fit = checkEligibility(layout, [32, 256]);
      if (!fit.eligible) throw new Error(layout);
      expect(() => packLayout(fit.params, new Int8Array(32 * 256), [32, 256], { ...scale, values: new Float32Array(64) })).toThrow(expect.objectContaining({ code: "E_LAYOUT_SCALES" }));
      expect(checkEligibility(layout, [32, 256], { groupSize: 128 })).toMatchObject({ eligible: false, rule: "one scale per tensor" });
    }
  });

  it("a payload of the wrong size is E_PAYLOAD_SIZE", () => {
    expect(() => unpackLayout({ layout: "i2_s", blockSize: 128, variant: "x86" }, new Uint8Array(10), [1, 128])).toThrow(B158Error);
  });

  it("a tiling that does not fit the shape is E_TILING", () => {
    try {
      packLayout({ layout: "tl2", tilingSource: "kernel-config", BM: 64, BK: 96, bm: 32 }, new Int8Array(32 * 288), [32, 288], 1);
      expect.unreachable();
    } catch (e) {
      expect((e as B158Error).code).toBe("E_TILING");
    }
  });
});

describe("eligibility and the encoding choice", () => {
  it("1bitLLM-3B's 3200 and 8640 fail I2_S and TQ, with the rule and the reason", () => {
    for (const shape of [[3200, 8640], [8640, 3200]] as const) {
      for (const layout of ["tq1_0", "tq2_0"] as const) {
        const fit = checkEligibility(layout, shape);
        expect(fit).toEqual({ eligible: false, rule: "K % 256 == 0", reason: `K = ${shape[1]} is not a multiple of 256` });
      }
    }
    // 3200 = 25 x 128 fits I2_S; 8640 does not
    expect(checkEligibility("i2_s", [3200, 8640])).toMatchObject({ eligible: false, rule: "K % 128 == 0" });
    expect(checkEligibility("i2_s", [8640, 3200])).toMatchObject({ eligible: true });
    // TL presets exist for exactly these shapes
    expect(checkEligibility("tl2", [8640, 3200])).toMatchObject({ eligible: true, params: { tilingSource: "preset", BM: 320, BK: 96 } });
  });

  it("computed tilings cover the 2B-4T shapes no preset has", () => {
    for (const [M, K] of [[2560, 6912], [6912, 2560], [640, 2560], [2560, 2560]] as const) {
      for (const layout of ["tl1", "tl2"] as const) {
        const fit = checkEligibility(layout, [M, K]);
        expect(fit.eligible, `${layout} ${M}x${K}`).toBe(true);
        if (fit.eligible) expect(fit.params).toMatchObject({ tilingSource: "computed" });
      }
    }
  });

  it("without --fallback an ineligible tensor is E_LAYOUT_SHAPE naming it; with it, a reported fallback", () => {
    try {
      chooseEncoding("model.layers.0.mlp.down_proj.weight", [3200, 8640], "tq2_0");
      expect.unreachable();
    } catch (e) {
      expect((e as B158Error).code).toBe("E_LAYOUT_SHAPE");
      expect((e as B158Error).message).toContain("model.layers.0.mlp.down_proj.weight");
      expect((e as B158Error).message).toContain("[3200, 8640]");
      expect((e as B158Error).message).toContain("K % 256 == 0");
    }
    expect(chooseEncoding("w", [3200, 8640], "tq2_0", { fallback: "f16" })).toEqual({
      kind: "fallback",
      dtype: "f16",
      layout: "tq2_0",
      rule: "K % 256 == 0",
      reason: "K = 8640 is not a multiple of 256",
    });
    expect(chooseEncoding("w", [256, 256], "tq2_0", { fallback: "f16" })).toMatchObject({ kind: "layout", payloadBytes: 256 * 66 });
  });

  it("q2_0 holds 1bitLLM-3B's K = 3200 and 8640 (multiples of 64, not of 256)", () => {
    for (const shape of [[3200, 8640], [8640, 3200]] as const) {
      expect(checkEligibility("q2_0", shape)).toMatchObject({ eligible: true, payloadBytes: ((shape[0] * shape[1]) / 64) * 18 });
    }
    expect(checkEligibility("q2_0", [4, 320])).toMatchObject({ eligible: true });
    expect(checkEligibility("q2_0", [4, 100])).toEqual({ eligible: false, rule: "K % 64 == 0", reason: "K = 100 is not a multiple of 64" });
  });

  it("scales a layout cannot hold: E_LAYOUT_SCALES naming the tensor and the layouts that can; --fallback keeps them as float", () => {
    try {
      chooseEncoding("model.layers.1.self_attn.q_proj.weight", [256, 1024], "tq2_0", { groupSize: 128 });
      expect.unreachable();
    } catch (e) {
      expect((e as B158Error).code).toBe("E_LAYOUT_SCALES");
      expect((e as B158Error).message).toContain("model.layers.1.self_attn.q_proj.weight");
      expect((e as B158Error).message).toContain("per group of 128");
      expect((e as B158Error).details).toMatchObject({ layouts: ["q2_0"] });
    }
    expect(chooseEncoding("w", [256, 1024], "tq2_0", { groupSize: 128, fallback: "f16" })).toMatchObject({ kind: "fallback", rule: "G % 256 == 0" });
    expect(chooseEncoding("w", [256, 1024], "q2_0", { groupSize: 128 })).toMatchObject({ kind: "layout", payloadBytes: (256 * 1024 * 18) / 64 });
    // the shape is checked first: its own error
    expect(() => chooseEncoding("w", [256, 320], "tq2_0", { groupSize: 64 })).toThrow(expect.objectContaining({ code: "E_LAYOUT_SHAPE" }));
  });

  it("the ARM I2_S variant is chosen explicitly and recorded", () => {
    expect(checkEligibility("i2_s", [2, 64], { i2sVariant: "arm" })).toMatchObject({ eligible: true, params: { blockSize: 64, variant: "arm" } });
    expect(checkEligibility("i2_s", [2, 64])).toMatchObject({ eligible: false });
  });
});

describe("kernel_config.ini", () => {
  const ini = "; written by codegen_tl2.py\n[Kernels_0]\nm = 3200\nk = 8640\nbm = 160\nbk = 96\nbmm = 32\n\n[Kernels_1]\nM = 256\nK = 256\nBM = 128\nBK = 96\nBMM = 32\n";

  it("parses codegen's sections (keys case-insensitive) and round-trips through the writer", () => {
    const config = parseKernelConfig(ini, "kernel_config.ini");
    expect(config.tilings.get("3200,8640")).toEqual({ BM: 160, BK: 96, bm: 32 });
    expect(config.tilings.get("256,256")).toEqual({ BM: 128, BK: 96, bm: 32 });
    expect(parseKernelConfig(formatKernelConfig(config.tilings)).tilings).toEqual(config.tilings);
  });

  it("drives the tiling, and a shape it lacks is ineligible (never a silent guess)", () => {
    const kernelConfig = parseKernelConfig(ini);
    expect(chooseEncoding("w", [256, 256], "tl2", { kernelConfig })).toMatchObject({ kind: "layout", params: { tilingSource: "kernel-config", BM: 128 } });
    expect(() => chooseEncoding("w", [512, 256], "tl2", { kernelConfig })).toThrow(B158Error);
  });

  it.each([
    ["no sections", ""],
    ["a key outside a section", "m = 1\n"],
    ["a missing key", "[K]\nm = 256\nk = 256\nbm = 128\nbk = 96\n"],
    ["a non-numeric value", "[K]\nm = 256\nk = 256\nbm = x\nbk = 96\nbmm = 32\n"],
    ["a repeated shape", "[A]\nm=1\nk=1\nbm=1\nbk=1\nbmm=1\n[B]\nm=1\nk=1\nbm=1\nbk=1\nbmm=1\n"],
    ["garbage", "[K]\nthis is not ini\n"],
  ])("%s is E_KERNEL_CONFIG", (_name, text) => {
    try {
      parseKernelConfig(text);
      expect.unreachable();
    } catch (e) {
      expect((e as B158Error).code).toBe("E_KERNEL_CONFIG");
    }
  });
});
