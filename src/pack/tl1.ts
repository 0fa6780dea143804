import { B158Error } from "../errors.js";
import { checkCodes, checkPayload } from "./check.js";
import { codeWords, invalidBits, plusOne, reportNotTernary } from "./swar.js";
import { tl1TilingProblem, type Tiling } from "./layouts.js";
import { packedCodeError, type CodeScan, type DecodeContext } from "./packed-code.js";

/**
 * bitnet.cpp TL1 (docs/layouts.md; transform_to_tl1 in bitnet.cpp's converter): weight pairs (2j, 2j+1) of a row become the
 * 4-bit index P = 3a + b + 4 (0..8), two per byte (pair j high nibble, j+1 low), emitted tile by tile:
 *
 *   for i0 < M/BM, i1 < K/BK, i2 < BM/bm, i3 < BK/by, i4 < bm/16, i5 < by/4, r < 16:
 *     m = i0*BM + i2*bm + i4*16 + r;  j = i1*BK/2 + i3*by/2 + i5*2     (by = 256 / bm)
 *
 * M*K/4 bytes. The f32 scale is not part of the payload; a GGUF stores it as the next tensor.
 */
export function packTl1(codes: Int8Array, M: number, K: number, tiling: Tiling): Uint8Array {
  checkTiling(M, K, tiling);
  checkCodes(codes, M, K, "tl1");
  const { BM, BK, bm } = tiling;
  const by = 256 / bm;
  const out = new Uint8Array((M * K) / 4);
  // Each output byte is one aligned word of four codes (two pairs): v = t + 1 per byte, then a table.
  const words = codeWords(codes);
  const rowWords = K / 4;
  let bad = 0;
  let o = 0;
  for (let i0 = 0; i0 < M / BM; i0++)
    for (let i1 = 0; i1 < K / BK; i1++)
      for (let i2 = 0; i2 < BM / bm; i2++)
        for (let i3 = 0; i3 < BK / by; i3++)
          for (let i4 = 0; i4 < bm / 16; i4++)
            for (let i5 = 0; i5 < by / 4; i5++) {
              const column = 2 * (i1 * (BK / 2) + i3 * (by / 2) + i5 * 2); // first weight of pair j, a multiple of 4
              let word = (i0 * BM + i2 * bm + i4 * 16) * rowWords + column / 4;
              for (let r = 0; r < 16; r++, word += rowWords) {
                const v = plusOne(words[word]!);
                bad |= invalidBits(v);
                out[o++] = PAIR_BYTE[(v & 3) | ((v >>> 6) & 12) | ((v >>> 12) & 48) | ((v >>> 18) & 192)]!;
              }
            }
  if (bad !== 0) reportNotTernary(codes, K);
  return out;
}

/** The TL1 byte for four codes v0..v3 (each t + 1) keyed v0 | v1 << 2 | v2 << 4 | v3 << 6: (3a + b + 4) << 4 | (3c + d + 4). */
const PAIR_BYTE = Uint8Array.from({ length: 256 }, (_, key) => {
  const v = [key & 3, (key >>> 2) & 3, (key >>> 4) & 3, (key >>> 6) & 3];
  return ((3 * v[0]! + v[1]!) << 4) | (3 * v[2]! + v[3]!);
});

/** A pair index over 8 is E_PACKED_CODE (packed-code.ts). */
export function unpackTl1(bytes: Uint8Array, M: number, K: number, tiling: Tiling, context?: DecodeContext): Int8Array {
  checkTiling(M, K, tiling);
  checkPayload(bytes, (M * K) / 4, "tl1", M, K);
  const { BM, BK, bm } = tiling;
  const by = 256 / bm;
  const codes = new Int8Array(M * K);
  let o = 0;
  for (let i0 = 0; i0 < M / BM; i0++)
    for (let i1 = 0; i1 < K / BK; i1++)
      for (let i2 = 0; i2 < BM / bm; i2++)
        for (let i3 = 0; i3 < BK / by; i3++)
          for (let i4 = 0; i4 < bm / 16; i4++)
            for (let i5 = 0; i5 < by / 4; i5++) {
              const column = 2 * (i1 * (BK / 2) + i3 * (by / 2) + i5 * 2);
              const rowBase = i0 * BM + i2 * bm + i4 * 16;
              for (let r = 0; r < 16; r++) {
                const i = (rowBase + r) * K + column;
                const byte = bytes[o]!;
                if (!writePair(codes, i, byte >>> 4) || !writePair(codes, i + 2, byte & 15)) throw pairIndexError("tl1", context, bytes, o);
                o++;
              }
            }
  return codes;
}

/** Index 0..8 back to the pair (a, b) with 3a + b + 4 = index; false (nothing written) for 9..15, outside the alphabet. */
export function writePair(codes: Int8Array, i: number, index: number): boolean {
  if (index > 8) return false;
  codes[i] = PAIR_FIRST[index]!;
  codes[i + 1] = PAIR_SECOND[index]!;
  return true;
}

const PAIR_FIRST = Int8Array.from({ length: 9 }, (_, index) => Math.floor(index / 3) - 1);
const PAIR_SECOND = Int8Array.from({ length: 9 }, (_, index) => (index % 3) - 1);

/** E_PACKED_CODE for a byte of pair indices (TL1, TL2's tail) with a nibble over 8. */
export function pairIndexError(layout: string, context: DecodeContext | undefined, bytes: Uint8Array, at: number): B158Error {
  const byte = bytes[at]!;
  return packedCodeError(layout, context, at, `the ${layout.toUpperCase()} pair index ${byte >>> 4 > 8 ? byte >>> 4 : byte & 15} (pairs are 0..8) in byte 0x${byte.toString(16).padStart(2, "0")}`);
}

function checkTiling(M: number, K: number, tiling: Tiling): void {
  const problem = tl1TilingProblem(M, K, tiling);
  if (problem !== undefined) {
    throw new B158Error("E_TILING", `TL1 tiling BM ${tiling.BM} / BK ${tiling.BK} / bm ${tiling.bm} does not fit [${M}, ${K}]: ${problem}`, {
      details: { M, K, ...tiling },
    });
  }
}

/** Bytes of TL1 pair indices with a nibble over 8 (every byte of a TL1 payload is two indices). */
export function scanTl1(bytes: Uint8Array): CodeScan {
  let count = 0;
  let first = -1;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b >>> 4 <= 8 && (b & 15) <= 8) continue;
    if (count++ === 0) first = i;
  }
  return { count, first };
}
