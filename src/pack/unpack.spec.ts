import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { unpackI2S } from "./i2s.js";
import { unpackTq1_0, unpackTq2_0 } from "./tq.js";
import { TQ1_0_BLOCK_BYTES, TQ2_0_BLOCK_BYTES } from "./layouts.js";

/**
 * The word-at-a-time unpackers against per-byte readings of the layouts, on arbitrary bytes (so the
 * unused code 3 too, which both must refuse at the same byte), at aligned and misaligned offsets,
 * into a fresh array or a given one.
 */
function randomBytes(length: number, seed: number, offset = 0): Uint8Array {
  let s = seed >>> 0;
  const backing = new Uint8Array(length + offset);
  for (let i = offset; i < backing.length; i++) backing[i] = (s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 24;
  return backing.subarray(offset);
}

/** The first byte in a run that holds a 2-bit field equal to 3, or -1. */
function firstCode3(bytes: Uint8Array, isCode: (i: number) => boolean): number {
  for (let i = 0; i < bytes.length; i++) if (isCode(i) && [0, 2, 4, 6].some((s) => ((bytes[i]! >>> s) & 3) === 3)) return i;
  return -1;
}

/** What an unpacker gives: its codes, or the byte its E_PACKED_CODE names. */
function decodeOrByte(decode: () => Int8Array): Int8Array | number {
  try {
    return decode();
  } catch (error) {
    expect(error).toMatchObject({ code: "E_PACKED_CODE" });
    return (error as { details: { byte: number } }).details.byte;
  }
}

/** I2_S per byte: byte g of a block holds elements g, g + B/4, g + B/2, g + 3B/4 in bits 7:6 .. 1:0 (code 3 refused). */
function referenceI2S(bytes: Uint8Array, n: number, blockSize: number): Int8Array | number {
  const bad = firstCode3(bytes, (i) => i < n / 4);
  if (bad !== -1) return bad;
  const codes = new Int8Array(n);
  const quarter = blockSize / 4;
  for (let i = 0; i < n; i++) {
    const block = Math.floor(i / blockSize);
    const within = i % blockSize;
    const byte = bytes[block * quarter + (within % quarter)]!;
    codes[i] = ((byte >>> (6 - 2 * Math.floor(within / quarter))) & 3) - 1;
  }
  return codes;
}

/** TQ2_0 per byte: byte 32j + m of a block holds elements 128j + 32n + m at bits 2n, as q - 1 (code 3 refused). */
function referenceTq2_0(bytes: Uint8Array, n: number): Int8Array | number {
  const bad = firstCode3(bytes, (i) => i % TQ2_0_BLOCK_BYTES < 64);
  if (bad !== -1) return bad;
  const codes = new Int8Array(n);
  for (let i = 0; i < n; i++) {
    const block = Math.floor(i / 256);
    const e = i % 256;
    const j = Math.floor(e / 128);
    const byte = bytes[block * TQ2_0_BLOCK_BYTES + 32 * j + (e % 32)]!;
    codes[i] = ((byte >>> (2 * Math.floor((e % 128) / 32))) & 3) - 1;
  }
  return codes;
}

describe("fast unpackers", () => {
  it("I2_S: words and bytes paths equal the per-byte reading, for both block sizes", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.constantFrom(128, 64) as fc.Arbitrary<128 | 64>, fc.integer({ min: 0, max: 3 }), fc.integer(), (M, blockSize, offset, seed) => {
        const K = blockSize * 2;
        // random bytes hold code 3 almost always: clear it from most inputs, so both outcomes are tested
        const bytes = randomBytes((M * K) / 4 + 32, seed, offset);
        if (seed % 4 !== 0) for (let i = 0; i < (M * K) / 4; i++) if ((bytes[i]! & (bytes[i]! >>> 1) & 0x55) !== 0) bytes[i] = bytes[i]! & 0x77;
        const expected = referenceI2S(bytes, M * K, blockSize);
        const got = decodeOrByte(() => unpackI2S(bytes, M, K, blockSize).codes);
        expect(typeof got === "number" ? got : [...got]).toEqual(typeof expected === "number" ? expected : [...expected]);
        if (typeof expected === "number") return;
        const { codes, scale } = unpackI2S(bytes, M, K, blockSize);
        expect(scale).toBe(new DataView(bytes.buffer, bytes.byteOffset).getFloat32((M * K) / 4, true));
        const out = new Int8Array(M * K).fill(9);
        expect(unpackI2S(bytes, M, K, blockSize, out).codes).toBe(out);
        expect([...out]).toEqual([...codes]);
      }),
      { numRuns: 100 },
    );
  });

  it("TQ2_0: equals the per-byte reading at even and odd offsets, and decodes into a given array", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 3 }), fc.integer(), (M, offset, seed) => {
        const K = 512;
        const bytes = randomBytes(((M * K) / 256) * TQ2_0_BLOCK_BYTES, seed, offset);
        if (seed % 4 !== 0) for (let i = 0; i < bytes.length; i++) if (i % TQ2_0_BLOCK_BYTES < 64 && (bytes[i]! & (bytes[i]! >>> 1) & 0x55) !== 0) bytes[i] = bytes[i]! & 0x77;
        const expected = referenceTq2_0(bytes, M * K);
        const got = decodeOrByte(() => unpackTq2_0(bytes, M, K).codes);
        expect(typeof got === "number" ? got : [...got]).toEqual(typeof expected === "number" ? expected : [...expected]);
        if (typeof expected === "number") return;
        const { codes, scales } = unpackTq2_0(bytes, M, K);
        expect(scales.length).toBe((M * K) / 256);
        const out = new Int8Array(M * K);
        unpackTq2_0(bytes, M, K, out);
        expect([...out]).toEqual([...codes]);
      }),
      { numRuns: 100 },
    );
  });

  it("TQ1_0 decodes into a given array exactly as into a fresh one", () => {
    // every code byte as TQ1_0 writes it: ceil(v * 256 / 243) of five trits (qs) or four and a zero (qh)
    const bytes = randomBytes(3 * TQ1_0_BLOCK_BYTES, 42);
    for (let i = 0; i < bytes.length; i++) {
      const m = i % TQ1_0_BLOCK_BYTES;
      if (m < 48) bytes[i] = Math.ceil(((bytes[i]! % 243) * 256) / 243);
      else if (m < 52) bytes[i] = Math.ceil((3 * (bytes[i]! % 81) * 256) / 243);
    }
    const fresh = unpackTq1_0(bytes, 3, 256);
    const out = new Int8Array(3 * 256).fill(7);
    expect([...unpackTq1_0(bytes, 3, 256, out).codes]).toEqual([...fresh.codes]);
    expect([...out]).toEqual([...fresh.codes]);
  });

  it("refuses an output of the wrong length", () => {
    expect(() => unpackTq2_0(new Uint8Array(TQ2_0_BLOCK_BYTES), 1, 256, new Int8Array(255))).toThrow(/codes/);
  });
});
