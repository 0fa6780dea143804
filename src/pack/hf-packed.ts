import { B158Error } from "../errors.js";
import { packedCodeError } from "./packed-code.js";
import { minusOne } from "./swar.js";

/**
 * transformers' BitNet weight packing (integrations/bitnet.py pack_weights / unpack_weights):
 * a ternary [out, in] matrix becomes uint8 [ceil(out/4), in], packed along dim 0 in quarters.
 * Bits 2i..2i+1 of packed[r][c] hold row i*R + r (R = packed rows), as the code t + 1.
 * Code 3 never occurs in a valid checkpoint.
 */

/** Unpacks to ternary int8 [outRows, cols]. Throws E_PACKED_CODE on the unused code 3 (packed-code.ts), naming `file` when given. */
export function unpackHfPacked(packed: Uint8Array, packedRows: number, cols: number, outRows = packedRows * 4, tensorName = "tensor", file?: string): Int8Array {
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
  const words = cols % 4 === 0 && packed.byteOffset % 4 === 0;
  const bad = words ? unpackWords(packed, packedRows, cols, outRows, out) : unpackBytes(packed, packedRows, cols, outRows, out);
  if (bad !== 0) reportCode3(packed, packedRows, cols, outRows, tensorName, file);
  return out;
}

/** Rows of quarter q that exist in the output (the last quarter may be short). */
function quarterRows(quarter: number, packedRows: number, outRows: number): number {
  return Math.max(0, Math.min(packedRows, outRows - quarter * packedRows));
}

/** Four columns per Uint32: the quarter's four 2-bit fields, one per byte. Returns nonzero when some field was 3. */
function unpackWords(packed: Uint8Array, packedRows: number, cols: number, outRows: number, out: Int8Array): number {
  const src = new Uint32Array(packed.buffer, packed.byteOffset, packed.length >>> 2);
  const dst = new Uint32Array(out.buffer, out.byteOffset, out.length >>> 2);
  const W = cols >>> 2;
  let bad = 0;
  for (let quarter = 0; quarter < 4; quarter++) {
    const shift = 2 * quarter;
    const rows = quarterRows(quarter, packedRows, outRows);
    for (let r = 0; r < rows; r++) {
      const from = r * W;
      const to = (quarter * packedRows + r) * W;
      for (let c = 0; c < W; c++) {
        const v = (src[from + c]! >>> shift) & 0x03030303;
        bad |= v & (v >>> 1);
        dst[to + c] = minusOne(v);
      }
    }
  }
  return bad;
}

/** The same per byte, for widths that are not a multiple of 4. */
function unpackBytes(packed: Uint8Array, packedRows: number, cols: number, outRows: number, out: Int8Array): number {
  let bad = 0;
  for (let quarter = 0; quarter < 4; quarter++) {
    const shift = 2 * quarter;
    const rows = quarterRows(quarter, packedRows, outRows);
    for (let r = 0; r < rows; r++) {
      const from = r * cols;
      const to = (quarter * packedRows + r) * cols;
      for (let c = 0; c < cols; c++) {
        const v = (packed[from + c]! >>> shift) & 3;
        bad |= v & (v >>> 1);
        out[to + c] = v - 1;
      }
    }
  }
  return bad;
}

/** Throws E_PACKED_CODE at the first code 3, in unpacking order; called only after a check failed. */
function reportCode3(packed: Uint8Array, packedRows: number, cols: number, outRows: number, tensorName: string, file: string | undefined): never {
  for (let quarter = 0; quarter < 4; quarter++) {
    const shift = 2 * quarter;
    const rows = quarterRows(quarter, packedRows, outRows);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        if (((packed[r * cols + c]! >>> shift) & 3) !== 3) continue;
        throw packedCodeError("u8-packed", { tensor: tensorName, ...(file === undefined ? {} : { file }) }, r * cols + c, `the 2-bit code 3 in bits ${shift}..${shift + 1} (row ${r}, column ${c}; codes are 0, 1, 2)`);
      }
    }
  }
  throw new B158Error("E_INTERNAL", `${tensorName}: a code 3 was detected but not found`);
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
