import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PayloadChecksum } from "../convert/checksum.js";
import { Arena } from "./wasm/kernels.js";
import { xxh64, xxh64Initial, xxh64Stripes } from "./xxh64.js";

/**
 * XXH64, seed 0, of `pattern(n)`, computed with the reference C implementation compiled to
 * WebAssembly (npm xxhash-wasm 1.1.0, h64Raw(bytes, 0n)) on 2026-12-03; "" is the specification's
 * own example (xxhash_spec.md). Lengths cross the 32-byte stripe and the 8- and 4-byte tail steps.
 */
const GOLDEN: readonly [number, string][] = [
  [0, "ef46db3751d8e999"],
  [1, "a96c7f0ce858bbb7"],
  [7, "2744460dd675d2c0"],
  [32, "07f7b8e3bc5d6e25"],
  [100, "9ddada11d3dc2d8f"],
];
const pattern = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 131 + 7) & 255);
const hex = (h: bigint) => h.toString(16).padStart(16, "0");

/** The converter's module, or undefined where it is not built (then only TypeScript is tested here). */
const arena = Arena.create();

describe("XXH64 (write verification of direct payloads)", () => {
  it("matches the reference implementation", () => {
    for (const [n, expected] of GOLDEN) expect(hex(xxh64(pattern(n)))).toBe(expected);
  });

  it("the WebAssembly stripe loop gives the TypeScript accumulators on random bytes", () => {
    if (arena.kernels === undefined) return;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 700, size: "max" }), (bytes) => {
        const whole = bytes.subarray(0, bytes.length - (bytes.length % 32));
        const [held] = arena.carve(whole.length);
        held!.set(whole);
        const [ts, wasm] = [xxh64Initial(), xxh64Initial()];
        xxh64Stripes(ts, whole);
        arena.kernels!.xxh64Stripes(wasm, held!);
        expect([...wasm]).toEqual([...ts]);
      }),
    );
  });

  it("a streamed checksum is the one-shot hash at any chunking: in place, through a scratch, or in TypeScript", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600, size: "max" }), fc.array(fc.nat(80), { maxLength: 12, size: "max" }), (bytes, cuts) => {
        const expected = hex(xxh64(bytes));
        const [held, scratch] = arena.carve(bytes.length, 64);
        held!.set(bytes);
        const ways = [new PayloadChecksum(), new PayloadChecksum(arena.kernels), new PayloadChecksum(arena.kernels, scratch)];
        for (const [way, source] of ways.map((w, i) => [w, i === 1 ? held! : bytes] as const)) {
          let at = 0;
          for (const cut of cuts) {
            way.update(source.subarray(at, Math.min(source.length, at + cut)));
            at = Math.min(source.length, at + cut);
          }
          way.update(source.subarray(at));
          expect(way.digest()).toBe(expected);
        }
      }),
    );
  });
});
