import { createHash, type Hash } from "node:crypto";
import type { WasmKernels } from "../pack/wasm/kernels.js";

/**
 * The per-payload half of validating a written .b158: each payload's sha256 against its header
 * entry, its zero alignment padding, and NaN/Inf in float payloads. Kept free of the reader and the
 * schemas; a conversion worker reports the same facts for the payloads it has just written
 * (jobs.ts, from SlotWriter's read-back), so validation need not read them again (validate-b158.ts).
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

export type FloatLayout = "f32" | "f16" | "bf16";

export function isFloatLayout(layout: string): layout is FloatLayout {
  return layout === "f32" || layout === "f16" || layout === "bf16";
}

/**
 * NaN/Inf count (exponent bits all set) of whole little-endian elements; 16-bit formats two per
 * word, with no carry between the lanes (a field is at most the mask, so field + carry < 0x10000).
 * In WebAssembly when `kernels` holds the chunk (the same count).
 */
export function countNonFinite(chunk: Uint8Array, layout: FloatLayout, kernels?: WasmKernels): number {
  if (kernels?.holds(chunk) === true) return kernels.nonFinite(chunk, layout);
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

/** A payload's stretch of a file, then its alignment padding. */
export interface WalkRange {
  readonly fileOffset: number;
  readonly length: number;
  readonly padding: number;
}

/** What a walk does with each range's bytes (`index` into its ranges), and when a range is complete. */
export interface WalkVisitor {
  payload(index: number, bytes: Uint8Array): void;
  padding(index: number, bytes: Uint8Array): void;
  end(index: number): void;
}

/**
 * Hands a file's chunks, fed in file order, to the ranges they hold: each range's payload bytes
 * and padding bytes in order, then its end. The ranges are in file order and do not overlap; bytes
 * between them (the header, payloads handled elsewhere) are passed over.
 */
export class PayloadWalk {
  private index = 0;

  constructor(
    private readonly ranges: readonly WalkRange[],
    private readonly visitor: WalkVisitor,
  ) {}

  /** Ranges completed so far. */
  get ended(): number {
    return this.index;
  }

  /** The file's bytes from `position`; each call continues where the last one's chunk ended. */
  feed(chunk: Uint8Array, position: number): void {
    const chunkEnd = position + chunk.byteLength;
    const at = (offset: number) => Math.min(chunk.byteLength, Math.max(0, offset - position));
    while (this.index < this.ranges.length) {
      const range = this.ranges[this.index]!;
      const payloadEnd = range.fileOffset + range.length;
      const slotEnd = payloadEnd + range.padding;
      const payload = chunk.subarray(at(range.fileOffset), at(payloadEnd));
      if (payload.byteLength > 0) this.visitor.payload(this.index, payload);
      const padding = chunk.subarray(at(payloadEnd), at(slotEnd));
      if (padding.byteLength > 0) this.visitor.padding(this.index, padding);
      if (slotEnd > chunkEnd) return;
      this.visitor.end(this.index++);
    }
  }
}
