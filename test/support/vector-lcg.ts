/**
 * The golden vectors' LCG (test/vectors/README.md): ternary codes for the inputs the vectors do not
 * store. Mod 2^31 keeps only low bits, so 32-bit multiplication is exact here (a float64 product is not).
 */
export function lcgTernary(seed: number, M: number, K: number): Int8Array {
  const out = new Int8Array(M * K);
  let s = seed;
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff;
    out[i] = ((s >>> 16) % 3) - 1;
  }
  return out;
}
