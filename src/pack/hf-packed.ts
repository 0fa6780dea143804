import { B158Error } from "../errors.js";

/**
 * transformers' BitNet weight packing (integrations/bitnet.py pack_weights / unpack_weights):
 * a ternary [out, in] matrix becomes uint8 [ceil(out/4), in], packed along dim 0 in quarters.
 * Bits 2i..2i+1 of packed[r][c] hold row i*R + r (R = packed rows), as the code t + 1.
 * Code 3 never occurs in a valid checkpoint.
 */

/** Unpacks to ternary int8 [outRows, cols]. Throws E_PACKED_CODE on the unused code 3. */
export function unpackHfPacked(packed: Uint8Array, packedRows: number, cols: number, outRows = packedRows * 4, tensorName = "tensor"): Int8Array {
  if (packed.length !== packedRows * cols) {
    throw new B158Error("E_PACKED_SHAPE", `${tensorName}: packed buffer has ${packed.length} bytes, expected ${packedRows} x ${cols}`, {
      details: { tensor: tensorName, bytes: packed.length, packedRows, cols },
    });
  }
  if (outRows > packedRows * 4 || outRows <= (packedRows - 1) * 4) {
    throw new B158Error("E_PACKED_SHAPE", `${tensorName}: ${outRows} output rows cannot come from ${packedRows} packed rows`, {
      details: { tensor: tensorName, outRows, packedRows },
    });
  }
  const out = new Int8Array(outRows * cols);
  for (let quarter = 0; quarter < 4; quarter++) {
    const shift = 2 * quarter;
    for (let r = 0; r < packedRows; r++) {
      const row = quarter * packedRows + r;
      if (row >= outRows) break;
      const src = r * cols;
      const dst = row * cols;
      for (let c = 0; c < cols; c++) {
        const code = (packed[src + c]! >>> shift) & 3;
        if (code === 3) {
          throw new B158Error("E_PACKED_CODE", `${tensorName}: packed byte [${r}, ${c}] holds the unused code 3 in bits ${shift}..${shift + 1}`, {
            hint: "The checkpoint is corrupt or not in transformers' BitNet packing.",
            details: { tensor: tensorName, row: r, col: c },
          });
        }
        out[dst + c] = code - 1;
      }
    }
  }
  return out;
}

/** Packs ternary int8 [outRows, cols] into uint8 [ceil(outRows/4), cols]; padding rows use code 1 (zero), as transformers does. */
export function packHfPacked(ternary: Int8Array, outRows: number, cols: number): Uint8Array {
  const packedRows = Math.ceil(outRows / 4);
  const out = new Uint8Array(packedRows * cols);
  for (let quarter = 0; quarter < 4; quarter++) {
    const shift = 2 * quarter;
    for (let r = 0; r < packedRows; r++) {
      const row = quarter * packedRows + r;
      const dst = r * cols;
      if (row >= outRows) {
        for (let c = 0; c < cols; c++) out[dst + c]! |= 1 << shift;
        continue;
      }
      const src = row * cols;
      for (let c = 0; c < cols; c++) {
        const t = ternary[src + c]!;
        if (t < -1 || t > 1) {
          throw new B158Error("E_NOT_TERNARY", `value ${t} at [${row}, ${c}] is not ternary`, { details: { row, col: c, value: t } });
        }
        out[dst + c]! |= (t + 1) << shift;
      }
    }
  }
  return out;
}

/** Counts bytes holding code 3 in any of their four 2-bit fields (validate's scan). */
export function countInvalidPackedCodes(packed: Uint8Array): number {
  let count = 0;
  for (let i = 0; i < packed.length; i++) {
    const b = packed[i]!;
    // a field is 3 iff both its bits are set
    if ((b & (b >>> 1) & 0x55) !== 0) count++;
  }
  return count;
}
