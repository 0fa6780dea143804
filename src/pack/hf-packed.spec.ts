import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { B158Error } from "../errors.js";
import { countInvalidPackedCodes, packHfPacked, unpackHfPacked } from "./hf-packed.js";


/** The straightforward unpacker the fast one replaced: per element, throwing at the first code 3. */
function referenceUnpack(packed: Uint8Array, packedRows: number, cols: number, outRows: number): Int8Array {
  const out = new Int8Array(outRows * cols);
  for (let quarter = 0; quarter < 4; quarter++) {
    const shift = 2 * quarter;
    for (let r = 0; r < packedRows; r++) {
      const row = quarter * packedRows + r;
      if (row >= outRows) break;
      for (let c = 0; c < cols; c++) {
        const code = (packed[r * cols + c]! >>> shift) & 3;
        if (code === 3) throw new B158Error("E_PACKED_CODE", "code 3", { details: { row: r, col: c } });
        out[row * cols + c] = code - 1;
      }
    }
  }
  return out;
}

/** What an unpacker returns or throws, comparably. */
function outcome(unpack: () => Int8Array): { codes: number[] } | { code: string; details: unknown } {
  try {
    return { codes: [...unpack()] };
  } catch (e) {
    const error = e as B158Error;
    return { code: error.code, details: error.details };
  }
}

/** Random packed bytes; with `code3` some fields may hold 3, else every field is 0..2. */
function randomPacked(length: number, seed: number, code3: boolean): Uint8Array {
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 16;
  return Uint8Array.from({ length }, () => {
    let b = 0;
    for (let i = 0; i < 4; i++) b |= (code3 ? (next() % 64 === 0 ? 3 : next() % 3) : next() % 3) << (2 * i);
    return b;
  });
}

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

  it("the word-at-a-time unpacker agrees with the per-element one: shapes, offsets, out % 4 != 0, code 3", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }), fc.boolean(), fc.integer(), (packedRows, cols, short, offset, code3, seed) => {
        const outRows = Math.max(1, packedRows * 4 - short);
        fc.pre(outRows > (packedRows - 1) * 4);
        // a misaligned view exercises the per-byte path; cols % 4 == 0 at offset 0 the word path
        const backing = new Uint8Array(offset + packedRows * cols);
        backing.set(randomPacked(packedRows * cols, seed, code3), offset);
        const packed = backing.subarray(offset);
        const fast = outcome(() => unpackHfPacked(packed, packedRows, cols, outRows, "t"));
        const slow = outcome(() => referenceUnpack(packed, packedRows, cols, outRows));
        const { row, col } = "code" in slow ? (slow.details as { row: number; col: number }) : { row: 0, col: 0 };
        if ("code" in slow) expect(fast).toMatchObject({ code: "E_PACKED_CODE", details: { tensor: "t", byte: row * cols + col } });
        else expect(fast).toEqual(slow);
      }),
      { numRuns: 500 },
    );
  });

  it("ignores code 3 in the padding rows past outRows, as the per-element unpacker does", () => {
    // 1 packed row x 4 cols, 2 output rows: quarters 2 and 3 are padding, filled with code 3
    const packed = Uint8Array.from([0xf5, 0xf6, 0xf4, 0xf9]);
    expect([...unpackHfPacked(packed, 1, 4, 2)]).toEqual([...referenceUnpack(packed, 1, 4, 2)]);
    expect(() => unpackHfPacked(packed, 1, 4, 3)).toThrow(B158Error);
  });

  it("rejects a buffer whose size disagrees with its shape", () => {
    expect(() => unpackHfPacked(new Uint8Array(5), 2, 3)).toThrow(B158Error);
  });
});
