/** Constants of the .b158 container (docs/FORMAT.md §1). */

/** `\x89B158\r\n\x1a`: the high byte and CR LF catch 7-bit and text-mode transfers (PNG's trick). */
export const MAGIC = Uint8Array.from([0x89, 0x42, 0x31, 0x35, 0x38, 0x0d, 0x0a, 0x1a]);
export const MAJOR = 1;
/** The newest minor this code reads and writes; a writer writes the smallest minor a file needs (docs/FORMAT.md §1.8). */
export const MINOR = 1;
export const PREAMBLE_BYTES = 64;
/** Data section alignment: a page, so the file can be mmapped and payloads used in place. */
export const DATA_ALIGNMENT = 4096;
/** Payload alignment: a cache line, enough for any SIMD load. */
export const PAYLOAD_ALIGNMENT = 64;
/** Headers hold config and tokenizer files; 64 MiB is far above any real one (CWE-770 bound). */
export const MAX_HEADER_BYTES = 64 * 1024 * 1024;

export const TERNARY_LAYOUTS = ["i2_s", "tl1", "tl2", "tq1_0", "tq2_0", "q2_0"] as const;
/** Plain little-endian arrays and their element sizes. */
export const PLAIN_LAYOUT_BYTES = { f32: 4, f16: 2, bf16: 2, f64: 8, i8: 1, u8: 1, i16: 2, i32: 4, i64: 8, bool: 1 } as const;
export type PlainLayout = keyof typeof PLAIN_LAYOUT_BYTES;
export type B158Layout = (typeof TERNARY_LAYOUTS)[number] | PlainLayout;

/** Offsets stay plain numbers: safe up to 8 PiB, checked where they come from the wire. */
export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}
