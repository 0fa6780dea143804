/**
 * XXH64 (xxHash's 64-bit hash, seed 0), written from its published specification
 * (github.com/Cyan4973/xxHash, doc/xxhash_spec.md). A conversion uses it to check that payloads
 * written past the page cache read back from the disk as written (convert/checksum.ts): a
 * non-cryptographic 64-bit hash detects damage with probability 1 - 2^-64 and, in WebAssembly, runs
 * several times faster than sha256. Pure functions on typed arrays; the stripe loop's WebAssembly
 * twin is `xxh64_stripes` (gen-convert.ts), checked against `xxh64Stripes` here.
 */

const MASK = (1n << 64n) - 1n;
export const XXH_PRIME64_1 = 0x9e3779b185ebca87n;
export const XXH_PRIME64_2 = 0xc2b2ae3d27d4eb4fn;
export const XXH_PRIME64_3 = 0x165667b19e3779f9n;
export const XXH_PRIME64_4 = 0x85ebca77c2b2ae63n;
export const XXH_PRIME64_5 = 0x27d4eb2f165667c5n;

/** Bytes per stripe: four 8-byte lanes, one per accumulator. */
export const XXH64_STRIPE = 32;

const rotl = (x: bigint, r: bigint): bigint => ((x << r) | (x >> (64n - r))) & MASK;
const round = (acc: bigint, lane: bigint): bigint => (rotl((acc + lane * XXH_PRIME64_2) & MASK, 31n) * XXH_PRIME64_1) & MASK;
const mergeRound = (acc: bigint, value: bigint): bigint => ((((acc ^ round(0n, value)) * XXH_PRIME64_1) & MASK) + XXH_PRIME64_4) & MASK;

/** The four accumulators before the first stripe (seed 0). */
export function xxh64Initial(): BigUint64Array {
  return BigUint64Array.of((XXH_PRIME64_1 + XXH_PRIME64_2) & MASK, XXH_PRIME64_2, 0n, (0n - XXH_PRIME64_1) & MASK);
}

/** Adds the whole stripes of `bytes` (its length a multiple of 32) to the accumulators `acc`. */
export function xxh64Stripes(acc: BigUint64Array, bytes: Uint8Array): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; at + XXH64_STRIPE <= bytes.byteLength; at += XXH64_STRIPE) {
    for (let lane = 0; lane < 4; lane++) acc[lane] = round(acc[lane]!, view.getBigUint64(at + 8 * lane, true));
  }
}

/**
 * The digest of `total` bytes whose whole stripes went into `acc` and whose last `total % 32` bytes
 * are `tail`.
 */
export function xxh64Digest(acc: BigUint64Array, tail: Uint8Array, total: number): bigint {
  let h: bigint;
  if (total >= XXH64_STRIPE) {
    const [v1, v2, v3, v4] = acc as unknown as [bigint, bigint, bigint, bigint];
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & MASK;
    for (const v of [v1, v2, v3, v4]) h = mergeRound(h, v);
  } else {
    h = XXH_PRIME64_5;
  }
  h = (h + BigInt(total)) & MASK;
  const view = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  let at = 0;
  for (; at + 8 <= tail.byteLength; at += 8) h = (((rotl(h ^ round(0n, view.getBigUint64(at, true)), 27n) * XXH_PRIME64_1) & MASK) + XXH_PRIME64_4) & MASK;
  if (at + 4 <= tail.byteLength) {
    h = (((rotl(h ^ ((BigInt(view.getUint32(at, true)) * XXH_PRIME64_1) & MASK), 23n) * XXH_PRIME64_2) & MASK) + XXH_PRIME64_3) & MASK;
    at += 4;
  }
  for (; at < tail.byteLength; at++) h = (rotl(h ^ ((BigInt(tail[at]!) * XXH_PRIME64_5) & MASK), 11n) * XXH_PRIME64_1) & MASK;
  h ^= h >> 33n;
  h = (h * XXH_PRIME64_2) & MASK;
  h ^= h >> 29n;
  h = (h * XXH_PRIME64_3) & MASK;
  return h ^ (h >> 32n);
}

/** XXH64 of `bytes`, seed 0. */
export function xxh64(bytes: Uint8Array): bigint {
  const acc = xxh64Initial();
  const whole = bytes.byteLength - (bytes.byteLength % XXH64_STRIPE);
  xxh64Stripes(acc, bytes.subarray(0, whole));
  return xxh64Digest(acc, bytes.subarray(whole), bytes.byteLength);
}
