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
