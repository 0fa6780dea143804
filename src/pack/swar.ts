import { B158Error } from "../errors.js";

/**
 * Word-at-a-time helpers for the packers' hot loops: four int8 codes per Uint32 load. Every packer
 * turns codes t in {-1, 0, 1} into 2-bit values v = t + 1 in {0, 1, 2}; doing it four bytes at a
 * time, without carries between bytes, is what lets plain TypeScript pack at memory speed.
 */

/** A Uint32 view of the codes (copied only if the Int8Array is not 4-byte aligned). */
export function codeWords(codes: Int8Array): Uint32Array {
  const aligned = codes.byteOffset % 4 === 0 ? codes : codes.slice();
  return new Uint32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >>> 2);
}

/** Per byte: t + 1 (0xFF -> 0, 0 -> 1, 1 -> 2), with no carry into the next byte. */
export function plusOne(word: number): number {
  return (((word & 0x7f7f7f7f) + 0x01010101) ^ (word & 0x80808080)) >>> 0;
}

/** Nonzero when some byte of v = plusOne(word) is not 0, 1 or 2 (the input was not ternary). */
export function invalidBits(v: number): number {
  return (v & 0xfcfcfcfc) | (v & (v >>> 1) & 0x01010101);
}

/** Throws E_NOT_TERNARY at the first bad code; called only after a word check failed. */
export function reportNotTernary(codes: Int8Array, K: number): never {
  const index = codes.findIndex((c) => c < -1 || c > 1);
  throw new B158Error("E_NOT_TERNARY", `value ${codes[index]} at [${Math.floor(index / K)}, ${index % K}] is not -1, 0 or +1`, {
    details: { row: Math.floor(index / K), col: index % K, value: codes[index] },
  });
}

/** Per byte: 0x80 where the byte of `x` is 0, else 0 (exact: nothing carries between bytes). */
export function zeroBytes(x: number): number {
  return ~(((x & 0x7f7f7f7f) + 0x7f7f7f7f) | x) & 0x80808080;
}

/** Per byte: t - 1 of a 2-bit code t + 1 in 0..3 (0 -> 0xFF, 1 -> 0, 2 -> 1, 3 -> 2), with no borrow between bytes. */
export function minusOne(v: number): number {
  return ((v + 0x7f7f7f7f) ^ 0x80808080) >>> 0;
}

/**
 * How many codes are -1, 0 and +1 (other values count in none), four per word. Per-byte tallies
 * flush every 127 words, before a byte could reach 128 and the word leave int32 range.
 */
export function countCodes(codes: Int8Array): [number, number, number] {
  const counts: [number, number, number] = [0, 0, 0];
  const whole = codes.byteOffset % 4 === 0 ? codes.length >>> 2 : 0;
  const words = whole > 0 ? new Uint32Array(codes.buffer, codes.byteOffset, whole) : new Uint32Array(0);
  for (let start = 0; start < whole; start += 127) {
    const stop = Math.min(whole, start + 127);
    let minus = 0;
    let zero = 0;
    let plus = 0;
    for (let i = start; i < stop; i++) {
      const w = words[i]!;
      minus += zeroBytes(~w) >>> 7;
      zero += zeroBytes(w) >>> 7;
      plus += zeroBytes(w ^ 0x01010101) >>> 7;
    }
    counts[0] += byteSum(minus);
    counts[1] += byteSum(zero);
    counts[2] += byteSum(plus);
  }
  for (let i = 4 * whole; i < codes.length; i++) {
    const c = codes[i]!;
    if (c >= -1 && c <= 1) counts[c + 1]!++;
  }
  return counts;
}

function byteSum(x: number): number {
  return (x & 0xff) + ((x >>> 8) & 0xff) + ((x >>> 16) & 0xff) + (x >>> 24);
}
