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
