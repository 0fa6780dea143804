import { describe, expect, it } from "vitest";
import type { LayoutParams } from "../pack/layouts.js";
import { packLayout } from "../pack/codec.js";
import { anyNonzero, payloadBytesOf, RangePacker, rangeRows, rowUnit } from "./row-packer.js";

// Range packing against whole packing, in TypeScript and WebAssembly on random shapes: src/pack/wasm/convert-kernels.spec.ts

describe("packing by row ranges", () => {
  it("an all-zero tensor: nonzero false and TQ's embedded scale 0, as whole", () => {
    const codes = new Int8Array(4 * 256);
    const params: LayoutParams = { layout: "tq2_0", blockSize: 256 };
    const packer = new RangePacker(params, [4, 256], 0.5, new Uint8Array(payloadBytesOf(params, [4, 256])), new Int8Array(4 * 256));
    packer.packRows(codes);
    const { payload, check } = packer.finish();
    expect(check).toEqual({ nonzero: false, roundTrips: true, embeddedScale: 0 });
    expect(Buffer.from(payload).equals(Buffer.from(packLayout(params, codes, [4, 256], 0.5)))).toBe(true);
  });

  it("TL1/TL2 ranges are whole BM-row tiles; the others any rows", () => {
    const tl1: LayoutParams = { layout: "tl1", tilingSource: "computed", BM: 32, BK: 8, bm: 32 };
    expect(rowUnit(tl1)).toBe(32);
    expect(rangeRows(tl1, 4096, 128 * 1024)).toBe(32);
    expect(rangeRows(tl1, 1 << 20, 128 * 1024)).toBe(32);
    expect(rangeRows({ layout: "i2_s", blockSize: 128, variant: "x86" }, 4096, 128 * 1024)).toBe(32);
  });

  it("refuses ranges that do not fit the rows left, and an unfinished payload", () => {
    const params: LayoutParams = { layout: "tl1", tilingSource: "computed", BM: 32, BK: 8, bm: 32 };
    const packer = new RangePacker(params, [64, 256], 0.5, new Uint8Array(payloadBytesOf(params, [64, 256])), new Int8Array(64 * 256));
    expect(() => packer.packRows(new Int8Array(16 * 256))).toThrow(/does not fit/);
    packer.packRows(new Int8Array(32 * 256).fill(1));
    expect(() => packer.finish()).toThrow(/32 of 64 rows/);
    expect(() => packer.packRows(new Int8Array(64 * 256))).toThrow(/does not fit/);
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
