import { createHash, type Hash } from "node:crypto";
import { readSlot, type PayloadSlot } from "../formats/b158/slot.js";

/**
 * The per-payload half of validating a written .b158: each payload's sha256 against its header
 * entry, its zero alignment padding, and NaN/Inf in float payloads. Kept free of the reader and the
 * schemas so a conversion worker can run it on the payloads it has just written (validate-b158.ts).
 */
export interface PayloadRange {
  readonly name: string;
  /** Absolute position of the payload in the file. */
  readonly fileOffset: number;
  readonly length: number;
  /** Bytes of alignment padding after the payload, which must be zero. */
  readonly padding: number;
  readonly sha256: string;
  /** The .b158 layout; f32, f16 and bf16 payloads are scanned for NaN/Inf unless `scanFloats` is false. */
  readonly layout: string;
  /** False when the NaN/Inf count is known already (the converter scanned the bytes it wrote). */
  readonly scanFloats?: boolean;
}

export interface PayloadScan {
  /** The payload does not hash to its sha256. */
  readonly damaged: boolean;
  /** The alignment padding after the payload is not all zero (E_B158_PADDING). */
  readonly badPadding: boolean;
  /** What the payload's bytes hash to. */
  readonly sha256: string;
  /** NaN/Inf values in a float payload. */
  readonly nonFinite: number;
}

/** One payload's scan, fed its bytes in order (any chunking), then its padding. */
export class PayloadScanner {
  private readonly hash: Hash = createHash("sha256");
  private nonFinite = 0;
  private badPadding = false;

  private readonly floats: FloatLayout | undefined;

  constructor(readonly range: PayloadRange) {
    this.floats = isFloatLayout(range.layout) && range.scanFloats !== false ? range.layout : undefined;
  }

  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
    if (this.floats !== undefined) this.nonFinite += countNonFinite(chunk, this.floats);
  }

  padding(bytes: Uint8Array): void {
    if (bytes.some((b) => b !== 0)) this.badPadding = true;
  }

  finish(): PayloadScan {
    const sha256 = this.hash.digest("hex");
    return { damaged: sha256 !== this.range.sha256, badPadding: this.badPadding, sha256, nonFinite: this.nonFinite };
  }
}

/** Bytes read back at a time: a piece stays in this core's cache while it is hashed. */
const READ_BACK_BYTES = 1024 * 1024;
let readBackBuffer: Uint8Array | undefined;

/**
 * A payload just written through `slot`, read back from the file by the thread that wrote it and
 * scanned against `sha256` (what its bytes hashed to on the way out). Synchronous: the buffer is
 * this thread's own.
 */
export function readBack(slot: PayloadSlot, sha256: string, layout: string, scanFloats: boolean): PayloadScan {
  const scanner = new PayloadScanner({ name: slot.tensor, fileOffset: slot.position, length: slot.length, padding: slot.padding, sha256, layout, scanFloats });
  readBackBuffer ??= new Uint8Array(READ_BACK_BYTES);
  for (let at = 0; at < slot.length; at += READ_BACK_BYTES) scanner.update(readSlot(slot, at, Math.min(READ_BACK_BYTES, slot.length - at), readBackBuffer));
  scanner.padding(readSlot(slot, slot.length, slot.padding, readBackBuffer));
  return scanner.finish();
}

export type FloatLayout = "f32" | "f16" | "bf16";

export function isFloatLayout(layout: string): layout is FloatLayout {
  return layout === "f32" || layout === "f16" || layout === "bf16";
}

/**
 * NaN/Inf count (exponent bits all set) of whole little-endian elements; 16-bit formats two per
 * word, with no carry between the lanes (a field is at most the mask, so field + carry < 0x10000).
 */
export function countNonFinite(chunk: Uint8Array, layout: FloatLayout): number {
  const aligned = chunk.byteOffset % 4 === 0 ? chunk : chunk.slice();
  const words = new Uint32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >>> 2);
  let count = 0;
  if (layout === "f32") {
    for (let i = 0; i < words.length; i++) if ((words[i]! & 0x7f800000) === 0x7f800000) count++;
    return count;
  }
  const mask = layout === "bf16" ? 0x7f80 : 0x7c00;
  // per lane, field + (0x8000 - mask) reaches bit 15 exactly when the field is all ones
  const pair = (mask | (mask << 16)) >>> 0;
  const carry = (0x8000 - mask) * 0x10001;
  for (let i = 0; i < words.length; i++) {
    const x = (words[i]! & pair) + carry;
    if ((x & 0x80008000) !== 0) count += ((x >>> 15) & 1) + (x >>> 31);
  }
  // an odd trailing 16-bit element
  if (aligned.byteLength % 4 === 2) {
    const last = aligned[aligned.byteLength - 2]! | (aligned[aligned.byteLength - 1]! << 8);
    if ((last & mask) === mask) count++;
  }
  return count;
}
