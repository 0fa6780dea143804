import { B158Error } from "../errors.js";

/** Shared argument checks for packers: the codes must fill the shape and be ternary. */
export function checkCodes(codes: Int8Array, M: number, K: number, layout: string): void {
  if (codes.length !== M * K) {
    throw new B158Error("E_INTERNAL", `${layout}: ${codes.length} codes for a [${M}, ${K}] tensor`, { details: { layout, codes: codes.length, M, K } });
  }
}

export function checkPayload(bytes: Uint8Array, expected: number, layout: string, M: number, K: number): void {
  if (bytes.byteLength !== expected) {
    throw new B158Error("E_PAYLOAD_SIZE", `${layout} payload for [${M}, ${K}] is ${bytes.byteLength} bytes; expected ${expected}`, {
      details: { layout, bytes: bytes.byteLength, expected, M, K },
    });
  }
}

/** Where an unpacker decodes to: `out` when given (length n, aligned to `alignment` bytes), else a new array. */
export function decodeTarget(out: Int8Array | undefined, n: number, layout: string, alignment = 1): Int8Array {
  if (out === undefined) return new Int8Array(n);
  if (out.length !== n || out.byteOffset % alignment !== 0) {
    throw new B158Error("E_INTERNAL", `${layout}: an output of ${out.length} codes at offset ${out.byteOffset} for ${n} codes`, { details: { layout, length: out.length, n } });
  }
  return out;
}
