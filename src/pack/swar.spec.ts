import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { countCodes, minusOne, zeroBytes } from "./swar.js";

describe("word-at-a-time helpers", () => {
  it("zeroBytes marks exactly the zero bytes, with no carry between them", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (x) => {
        const expected = [0, 1, 2, 3].reduce((m, k) => (((x >>> (8 * k)) & 0xff) === 0 ? m | (0x80 << (8 * k)) : m), 0) >>> 0;
        expect(zeroBytes(x) >>> 0).toBe(expected);
      }),
      { numRuns: 2000 },
    );
    for (const x of [0, 0x01000000, 0x00000100, 0x80808080, 0x01010101, 0xff00ff00]) {
      expect(zeroBytes(x) >>> 0).toBe([0, 1, 2, 3].reduce((m, k) => (((x >>> (8 * k)) & 0xff) === 0 ? m | (0x80 << (8 * k)) : m), 0) >>> 0);
    }
  });

  it("minusOne maps 2-bit codes 0..3 to -1..2 in every byte", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 4, maxLength: 4 }), (v) => {
        const word = v[0]! | (v[1]! << 8) | (v[2]! << 16) | (v[3]! << 24);
        const out = new Int8Array(new Uint32Array([minusOne(word)]).buffer);
        expect([...out]).toEqual(v.map((c) => c - 1));
      }),
    );
  });

  it("countCodes counts -1, 0 and +1 like a per-element loop, ignoring other values, at any offset and length", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -3, max: 3 }), { maxLength: 1200, size: "max" }), fc.integer({ min: 0, max: 3 }), (values, offset) => {
        const backing = new Int8Array(offset + values.length);
        backing.set(values, offset);
        const codes = backing.subarray(offset);
        const expected = [0, 0, 0];
        for (const c of values) if (c >= -1 && c <= 1) expected[c + 1]!++;
        expect(countCodes(codes)).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });
});
