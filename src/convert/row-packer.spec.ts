import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { LayoutParams } from "../pack/layouts.js";
import { packLayout } from "../pack/codec.js";
import { anyNonzero, packsByRows, RowPacker } from "./row-packer.js";
import { checkPacked } from "./task.js";

const LAYOUTS: LayoutParams[] = [
  { layout: "i2_s", blockSize: 128, variant: "x86" },
  { layout: "i2_s", blockSize: 64, variant: "arm" },
  { layout: "tq2_0", blockSize: 256 },
  { layout: "tq1_0", blockSize: 256 },
  { layout: "q2_0", blockSize: 64 },
];

function randomCodes(n: number, seed: number, zeroRows: number, K: number): Int8Array {
  let s = seed >>> 0;
  const codes = Int8Array.from({ length: n }, () => (((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 16) % 3) - 1);
  codes.fill(0, 0, Math.min(n, zeroRows * K)); // leading all-zero rows: TQ's embedded d comes from a later block
  return codes;
}

describe("packing by row ranges", () => {
  it.each(LAYOUTS)("$layout/$blockSize: the same payload and check as packing the tensor whole, fed in any steps", (params) => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 700 }), fc.constantFrom(256, 512, 1280, ...(params.layout === "q2_0" ? [320, 64] : [])), fc.integer({ min: 0, max: 700 }), fc.integer({ min: 1, max: 300_000 }), fc.integer(), (M, K, zeroRows, feedStep, seed) => {
        const codes = randomCodes(M * K, seed, zeroRows, K);
        const scale = 0.0123;
        const packer = new RowPacker(params, [M, K], scale, new Int8Array(RowPacker.rangeCodes(K)));
        for (let available = feedStep; available < M * K; available += feedStep) packer.feed(codes, available);
        packer.feed(codes, M * K);
        const whole = packLayout(params, codes, [M, K], scale);
        const { payload, check } = packer.finish();
        expect(Buffer.from(payload).equals(Buffer.from(whole))).toBe(true);
        expect(check).toEqual(checkPacked(params, whole, codes, [M, K]));
      }),
      { numRuns: 25 },
    );
  });

  it("an all-zero tensor: nonzero false and TQ's embedded scale 0, as whole", () => {
    const codes = new Int8Array(4 * 256);
    const packer = new RowPacker({ layout: "tq2_0", blockSize: 256 }, [4, 256], 0.5, new Int8Array(RowPacker.rangeCodes(256)));
    packer.feed(codes, codes.length);
    expect(packer.finish().check).toEqual({ nonzero: false, roundTrips: true, embeddedScale: 0 });
  });

  it("only I2_S and TQ pack by rows; TL tiles across them", () => {
    expect(LAYOUTS.every(packsByRows)).toBe(true);
    expect(packsByRows({ layout: "tl1", tilingSource: "computed", BM: 32, BK: 8, bm: 32 })).toBe(false);
  });

  it("anyNonzero at any offset and length", () => {
    const backing = new Int8Array(11);
    for (let offset = 0; offset < 4; offset++) {
      expect(anyNonzero(backing.subarray(offset))).toBe(false);
      backing[10] = -1;
      expect(anyNonzero(backing.subarray(offset))).toBe(true);
      backing[10] = 0;
    }
    expect(anyNonzero(new Int8Array(0))).toBe(false);
  });
});
