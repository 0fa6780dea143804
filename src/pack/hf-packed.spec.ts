import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { B158Error } from "../errors.js";
import { countInvalidPackedCodes, packHfPacked, unpackHfPacked } from "./hf-packed.js";

describe("transformers BitNet packing", () => {
  it("packs along dim 0 in quarters: bits 2i..2i+1 of packed[r] hold row i*R + r", () => {
    // 8 rows x 1 col, R = 2: packed[0] holds rows 0,2,4,6; packed[1] rows 1,3,5,7
    const t = Int8Array.from([-1, 0, 1, -1, 0, 1, 1, 0]);
    const packed = packHfPacked(t, 8, 1);
    const code = (v: number) => v + 1;
    expect([...packed]).toEqual([
      code(-1) | (code(1) << 2) | (code(0) << 4) | (code(1) << 6),
      code(0) | (code(-1) << 2) | (code(1) << 4) | (code(0) << 6),
    ]);
    expect([...unpackHfPacked(packed, 2, 1)]).toEqual([...t]);
  });

  it("round-trips random ternary matrices, including out % 4 != 0", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 13 }), fc.integer({ min: 1, max: 9 }), fc.integer(), (rows, cols, seed) => {
        let s = seed >>> 0;
        const t = Int8Array.from({ length: rows * cols }, () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 16) % 3 - 1);
        const packed = packHfPacked(t, rows, cols);
        expect(packed.length).toBe(Math.ceil(rows / 4) * cols);
        expect(countInvalidPackedCodes(packed)).toBe(0);
        expect([...unpackHfPacked(packed, Math.ceil(rows / 4), cols, rows)]).toEqual([...t]);
      }),
      { numRuns: 200 },
    );
  });

  it("rejects the unused code 3 with E_PACKED_CODE and counts it in scans", () => {
    const packed = Uint8Array.from([0x55, 0x55 | 0b11_0000]);
    expect(countInvalidPackedCodes(packed)).toBe(1);
    expect(countInvalidPackedCodes(Uint8Array.from([0xff, 0x03, 0xc0, 0x0c, 0x30, 0xaa, 0x55, 0x00]))).toBe(5);
    try {
      unpackHfPacked(packed, 1, 2);
      expect.unreachable();
    } catch (e) {
      expect((e as B158Error).code).toBe("E_PACKED_CODE");
    }
  });

  it("rejects a buffer whose size disagrees with its shape", () => {
    expect(() => unpackHfPacked(new Uint8Array(5), 2, 3)).toThrow(B158Error);
  });
});
