import { B158Error } from "../errors.js";

/**
 * The one rule for decoding a ternary payload (docs/layouts.md, "Invalid codes and payload
 * padding"): every code field must be one the layout's packer writes for some ternary values. A
 * field outside that alphabet (a 2-bit code 3 in I2_S, TQ2_0 or transformers' packing, a TL1 pair
 * index over 8, a TL2 magnitude over 13 or a sign on a zero magnitude, a TQ1_0 byte that is not the
 * canonical encoding of its trits) means the payload is damaged: no upstream quantizer writes it,
 * and readers disagree on what it would mean. Decoders never guess a value for it; they throw
 * `packedCodeError`, which names the file, the tensor, the layout and the byte.
 */

/** What the bytes being decoded are: the tensor (given by whoever knows it), and the file (added by readers). */
export interface DecodeContext {
  readonly tensor?: string;
  readonly file?: string;
}

/**
 * E_PACKED_CODE for the first invalid field: `byte` is its offset in the payload, `found` says what
 * it holds and what was allowed (e.g. "TL1 pair index 12, not 0..8").
 */
export function packedCodeError(layout: string, context: DecodeContext | undefined, byte: number, found: string): B158Error {
  const file = context?.file;
  const tensor = context?.tensor;
  const where = [file === undefined ? undefined : `${file}:`, tensor === undefined ? "a" : `tensor "${tensor}"`].filter((p) => p !== undefined).join(" ");
  return new B158Error("E_PACKED_CODE", `${where} ${layout} payload: byte ${byte} holds ${found}, outside the ternary alphabet`, {
    hint: "The payload is damaged (no quantizer writes this code); convert the model again, or re-download the file.",
    details: { ...(file === undefined ? {} : { file }), ...(tensor === undefined ? {} : { tensor }), layout, byte },
  });
}

/** How many bytes of a run hold a code outside the alphabet, and the first one's offset (-1: none): validate's streamed scan. */
export interface CodeScan {
  readonly count: number;
  readonly first: number;
}

/** Bytes in start..end holding a 2-bit field equal to 3 (I2_S, TQ2_0 and transformers' packing). */
export function scanCode3(bytes: Uint8Array, start = 0, end = bytes.length): CodeScan {
  let count = 0;
  let first = -1;
  for (let i = start; i < end; i++) {
    const b = bytes[i]!;
    if ((b & (b >>> 1) & 0x55) === 0) continue;
    if (count++ === 0) first = i;
  }
  return { count, first };
}

/** Offset of the first byte holding a 2-bit field equal to 3 (I2_S, TQ2_0 codes), or -1. */
export function firstCode3(bytes: Uint8Array, start = 0, end = bytes.length): number {
  for (let i = start; i < end; i++) {
    const b = bytes[i]!;
    if ((b & (b >>> 1) & 0x55) !== 0) return i;
  }
  return -1;
}
