import { B158Error } from "../errors.js";

/** Shared argument checks for packers: the codes must fill the shape and be ternary. */
export function checkCodes(codes: Int8Array, M: number, K: number, layout: string): void {
  if (codes.length !== M * K) {
    throw new B158Error("E_INTERNAL", `${layout}: ${codes.length} codes for a [${M}, ${K}] tensor`, { details: { layout, codes: codes.length, M, K } });
  }
}

export function notTernary(index: number, value: number, K: number): B158Error {
  return new B158Error("E_NOT_TERNARY", `value ${value} at [${Math.floor(index / K)}, ${index % K}] is not -1, 0 or +1`, {
    details: { row: Math.floor(index / K), col: index % K, value },
  });
}

export function checkPayload(bytes: Uint8Array, expected: number, layout: string, M: number, K: number): void {
  if (bytes.byteLength !== expected) {
    throw new B158Error("E_PAYLOAD_SIZE", `${layout} payload for [${M}, ${K}] is ${bytes.byteLength} bytes; expected ${expected}`, {
      details: { layout, bytes: bytes.byteLength, expected, M, K },
    });
  }
}

/** Codes +1 in 0..2 for every element, or throws E_NOT_TERNARY: one pass that all packers share. */
export function assertTernary(codes: Int8Array, K: number): void {
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i]!;
    if (c < -1 || c > 1) throw notTernary(i, c, K);
  }
}
