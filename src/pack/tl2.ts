import { B158Error } from "../errors.js";
import { checkCodes, checkPayload } from "./check.js";
import { codeWords, invalidBits, plusOne, reportNotTernary } from "./swar.js";
import { tl2PayloadBytes, tl2TilingProblem, type Tiling } from "./layouts.js";
import { pairIndexError, writePair } from "./tl1.js";
import { packedCodeError, type DecodeContext } from "./packed-code.js";

/**
 * bitnet.cpp TL2 (docs/layouts.md; transform_to_tl2 in bitnet.cpp's converter). Columns split into K3 = floor(K/BK)*BK
 * three-weight columns and a K2 = K - K3 two-weight tail. Layout:
 *
 *   A  M*K3/6 bytes   |v| of triplets, two per byte, v = 9a + 3b + c in -13..13
 *   S  M*K3/24 bytes  sign bits (v < 0), 16-bit little-endian words over 8 triplets x 2 rows
 *   B  M*K2/4 bytes   TL1-style pair indices of the tail
 *   zero padding up to P = ((K-256)*M/3*5/8) + (256*M/2*4/8)
 *
 * Within each 32-row group, 8-byte groups 1 and 2 are swapped (PERM). The scale is stored apart.
 */
const PERM = [0, 2, 1, 3] as const;

/** |v| and (v < 0) for a triplet key v + 13 (the keys of invalid codes, 27..63, never index these). */
const MAGNITUDE = Uint8Array.from({ length: 64 }, (_, key) => Math.abs(key - 13) & 15);
const NEGATIVE = Uint8Array.from({ length: 64 }, (_, key) => (key < 13 ? 1 : 0));

/** Bit 7 - t of a byte moved to bit 14 - 2t: interleaves two rows' sign bytes into one S word. */
const SPREAD = Uint16Array.from({ length: 256 }, (_, x) => {
  let word = 0;
  for (let t = 0; t < 8; t++) if (x & (1 << (7 - t))) word |= 1 << (14 - 2 * t);
  return word;
});

/** Row within a 32-row group for output position q (the 8-byte group swap). */
function permutedRow(q: number): number {
  return PERM[q >>> 3]! * 8 + (q & 7);
}

export function packTl2(codes: Int8Array, M: number, K: number, tiling: Tiling): Uint8Array {
  checkTiling(M, K, tiling);
  checkCodes(codes, M, K, "tl2");
  const { BM, BK } = tiling;
  const K3 = Math.floor(K / BK) * BK;
  const K2 = K - K3;
  const out = new Uint8Array(tl2PayloadBytes(M, K));
  // Per row, once: the A byte of every triplet pair (|v_j| << 4 | |v_j+1|) and one sign byte per
  // 8 triplets (bit 7 - t for triplet t). The A and S regions are then gathers of these bytes.
  const pairsPerRow = K3 / 6;
  const signBytesPerRow = K3 / 24;
  const pairBytes = new Uint8Array(M * pairsPerRow);
  const signBytes = new Uint8Array(M * signBytesPerRow);
  // Three aligned words hold four triplets; a triplet's key 9(a+1) + 3(b+1) + (c+1) = v + 13 indexes
  // |v| and its sign. K % 32 == 0, so every row starts on a word.
  const words = codeWords(codes);
  let bad = 0;
  for (let m = 0; m < M; m++) {
    let w = (m * K) / 4;
    let p = m * pairsPerRow;
    let g = m * signBytesPerRow;
    for (let t = 0; t < K3 / 3; t += 8, g++) {
      let sign = 0;
      for (let u = 0; u < 8; u += 4, w += 3) {
        const x = plusOne(words[w]!);
        const y = plusOne(words[w + 1]!);
        const z = plusOne(words[w + 2]!);
        bad |= invalidBits(x) | invalidBits(y) | invalidBits(z);
        const k0 = 9 * (x & 3) + 3 * ((x >>> 8) & 3) + ((x >>> 16) & 3);
        const k1 = 9 * (x >>> 24) + 3 * (y & 3) + ((y >>> 8) & 3);
        const k2 = 9 * ((y >>> 16) & 3) + 3 * (y >>> 24) + (z & 3);
        const k3 = 9 * ((z >>> 8) & 3) + 3 * ((z >>> 16) & 3) + (z >>> 24);
        pairBytes[p++] = (MAGNITUDE[k0]! << 4) | MAGNITUDE[k1]!;
        pairBytes[p++] = (MAGNITUDE[k2]! << 4) | MAGNITUDE[k3]!;
        sign |= (NEGATIVE[k0]! << (7 - u)) | (NEGATIVE[k1]! << (6 - u)) | (NEGATIVE[k2]! << (5 - u)) | (NEGATIVE[k3]! << (4 - u));
      }
      signBytes[g] = sign;
    }
  }
  if (bad !== 0) reportNotTernary(codes, K);
  const rowOffsets = Int32Array.from({ length: 32 }, (_, q) => permutedRow(q) * pairsPerRow);
  let o = 0;
  // A: three-weight indices
  for (let i0 = 0; i0 < M / BM; i0++)
    for (let i1 = 0; i1 < K3 / BK; i1++)
      for (let i2 = 0; i2 < BM / 32; i2++) {
        const group = (i0 * BM + i2 * 32) * pairsPerRow + i1 * (BK / 6);
        for (let i3 = 0; i3 < BK / 6; i3++) for (let q = 0; q < 32; q++) out[o++] = pairBytes[group + rowOffsets[q]! + i3]!;
      }
  // S: signs; bit 15 - a of each little-endian word is triplet a >> 1 of row b + 16 (a & 1)
  for (let i0 = 0; i0 < M / BM; i0++)
    for (let i1 = 0; i1 < K3 / BK; i1++)
      for (let i2 = 0; i2 < BM / 32; i2++)
        for (let i3 = 0; i3 < BK / 24; i3++) {
          const g = (i0 * BM + i2 * 32) * signBytesPerRow + i1 * (BK / 24) + i3;
          for (let b = 0; b < 16; b++) {
            const word = (SPREAD[signBytes[g + b * signBytesPerRow]!]! << 1) | SPREAD[signBytes[g + (b + 16) * signBytesPerRow]!]!;
            out[o++] = word & 0xff;
            out[o++] = word >>> 8;
          }
        }
  // B: two-weight tail, fixed BK 32, bm 32, by 4
  for (let i0 = 0; i0 < M / BM; i0++)
    for (let i1 = 0; i1 < K2 / 32; i1++)
      for (let i2 = 0; i2 < BM / 32; i2++)
        for (let i3 = 0; i3 < 8; i3++) {
          const column = K3 + 2 * (i1 * 16 + i3 * 2);
          for (let q = 0; q < 32; q++) {
            const i = (i0 * BM + i2 * 32 + permutedRow(q)) * K + column;
            const a = codes[i]!, b = codes[i + 1]!, c = codes[i + 2]!, d = codes[i + 3]!;
            if ((a | b | c | d) > 1 || (a | b | c | d) < -1 || a < -1 || b < -1 || c < -1 || d < -1) reportNotTernary(codes, K);
            out[o++] = ((3 * a + b + 4) << 4) | (3 * c + d + 4);
          }
        }
  return out; // the rest stays zero: the padding the kernels expect
}

/**
 * The triplet (a, b, c) of each signed index v = 9a + 3b + c in -13..13, by key 16 * negative + |v|
 * (keys 14, 15, 30, 31 are never used: magnitudes over 13 are refused first).
 */
const tripletDigit = (digit: 0 | 1 | 2) =>
  Int8Array.from({ length: 32 }, (_, key) => {
    const v = (key & 16 ? -1 : 1) * Math.min(key & 15, 13);
    const a = Math.round(v / 9);
    const b = Math.round((v - 9 * a) / 3);
    return [a, b, v - 9 * a - 3 * b][digit]!;
  });
const DIGIT_A = tripletDigit(0);
const DIGIT_B = tripletDigit(1);
const DIGIT_C = tripletDigit(2);

/**
 * A magnitude over 13, a sign bit on a zero magnitude (the packer writes signs only for v < 0) and
 * a tail pair index over 8 are E_PACKED_CODE (packed-code.ts). The zero padding is not read.
 * The S region is read first, so each A byte becomes its two triplets' codes at once.
 */
export function unpackTl2(bytes: Uint8Array, M: number, K: number, tiling: Tiling, context?: DecodeContext): Int8Array {
  checkTiling(M, K, tiling);
  checkPayload(bytes, tl2PayloadBytes(M, K), "tl2", M, K);
  const { BM, BK } = tiling;
  const K3 = Math.floor(K / BK) * BK;
  const K2 = K - K3;
  const tripletsPerRow = K3 / 3;
  // S: 16 sign bits per word, bit 15 - a is triplet a >> 1 of row b (a even) or row b + 16 (a odd)
  const negative = new Uint8Array((M * K3) / 3);
  let o = (M * K3) / 6;
  for (let i0 = 0; i0 < M / BM; i0++)
    for (let i1 = 0; i1 < K3 / BK; i1++)
      for (let i2 = 0; i2 < BM / 32; i2++)
        for (let i3 = 0; i3 < BK / 24; i3++) {
          const j = i1 * (BK / 3) + i3 * 8;
          for (let b = 0; b < 16; b++, o += 2) {
            const word = bytes[o]! | (bytes[o + 1]! << 8);
            const even = (i0 * BM + i2 * 32 + b) * tripletsPerRow + j;
            const odd = even + 16 * tripletsPerRow;
            for (let t = 0; t < 8; t++) {
              negative[even + t] = (word >>> (15 - 2 * t)) & 1;
              negative[odd + t] = (word >>> (14 - 2 * t)) & 1;
            }
          }
        }
  // A: two triplets' magnitudes per byte, 32 (permuted) rows per column pair
  const codes = new Int8Array(M * K);
  const rows = Int32Array.from({ length: 32 }, (_, q) => permutedRow(q));
  let signedZero = 0;
  o = 0;
  for (let i0 = 0; i0 < M / BM; i0++)
    for (let i1 = 0; i1 < K3 / BK; i1++)
      for (let i2 = 0; i2 < BM / 32; i2++)
        for (let i3 = 0; i3 < BK / 6; i3++) {
          const j = i1 * (BK / 3) + i3 * 2;
          for (let q = 0; q < 32; q++, o++) {
            const m = i0 * BM + i2 * 32 + rows[q]!;
            const byte = bytes[o]!;
            const high = byte >>> 4;
            const low = byte & 15;
            if (high > 13 || low > 13) {
              throw packedCodeError("tl2", context, o, `the TL2 triplet magnitude ${high > 13 ? high : low} (magnitudes are 0..13) in byte 0x${byte.toString(16).padStart(2, "0")}`);
            }
            const t = m * tripletsPerRow + j;
            const n0 = negative[t]!;
            const n1 = negative[t + 1]!;
            signedZero |= (n0 & (high === 0 ? 1 : 0)) | (n1 & (low === 0 ? 1 : 0));
            const k0 = (n0 << 4) | high;
            const k1 = (n1 << 4) | low;
            const i = m * K + 3 * j;
            codes[i] = DIGIT_A[k0]!;
            codes[i + 1] = DIGIT_B[k0]!;
            codes[i + 2] = DIGIT_C[k0]!;
            codes[i + 3] = DIGIT_A[k1]!;
            codes[i + 4] = DIGIT_B[k1]!;
            codes[i + 5] = DIGIT_C[k1]!;
          }
        }
  if (signedZero !== 0) {
    // the first triplet (row by row) with a sign bit and all-zero codes
    const t = negative.findIndex((n, index) => {
      if (n !== 1) return false;
      const i = Math.floor(index / tripletsPerRow) * K + 3 * (index % tripletsPerRow);
      return codes[i] === 0 && codes[i + 1] === 0 && codes[i + 2] === 0;
    });
    const at = signByte(Math.floor(t / tripletsPerRow), t % tripletsPerRow, M, K3, tiling);
    throw packedCodeError("tl2", context, at, `a TL2 sign bit on a zero magnitude (the packer signs only v < 0) in byte 0x${bytes[at]!.toString(16).padStart(2, "0")}`);
  }
  o = (M * K3) / 6 + (M * K3) / 24;
  for (let i0 = 0; i0 < M / BM; i0++)
    for (let i1 = 0; i1 < K2 / 32; i1++)
      for (let i2 = 0; i2 < BM / 32; i2++)
        for (let i3 = 0; i3 < 8; i3++) {
          const column = K3 + 2 * (i1 * 16 + i3 * 2);
          for (let q = 0; q < 32; q++) {
            const i = (i0 * BM + i2 * 32 + rows[q]!) * K + column;
            const byte = bytes[o]!;
            if (!writePair(codes, i, byte >>> 4) || !writePair(codes, i + 2, byte & 15)) throw pairIndexError("tl2", context, bytes, o);
            o++;
          }
        }
  return codes;
}

/** The S region byte holding the sign of triplet j of row m: the inverse of the S loop in unpackTl2. */
function signByte(m: number, j: number, M: number, K3: number, { BM, BK }: Tiling): number {
  const [i0, r] = [Math.floor(m / BM), m % BM];
  const [i2, q] = [Math.floor(r / 32), r % 32];
  const [i1, within] = [Math.floor(j / (BK / 3)), j % (BK / 3)];
  const [i3, t] = [Math.floor(within / 8), within % 8];
  const word = q % 16 + 16 * (i3 + (BK / 24) * (i2 + (BM / 32) * (i1 + (K3 / BK) * i0)));
  // bits 15 - 2t (row q < 16) and 14 - 2t (row q + 16) of a little-endian word: t < 4 in its second byte
  return (M * K3) / 6 + 2 * word + (t < 4 ? 1 : 0);
}

function checkTiling(M: number, K: number, tiling: Tiling): void {
  const problem = tl2TilingProblem(M, K, tiling);
  if (problem !== undefined) {
    throw new B158Error("E_TILING", `TL2 tiling BM ${tiling.BM} / BK ${tiling.BK} / bm ${tiling.bm} does not fit [${M}, ${K}]: ${problem}`, {
      details: { M, K, ...tiling },
    });
  }
}
