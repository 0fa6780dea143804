import { XXH64_STRIPE, xxh64Digest, xxh64Initial, xxh64Stripes } from "../pack/xxh64.js";
import type { WasmKernels } from "../pack/wasm/kernels.js";
import type { PayloadScan } from "./payload-scan.js";

/**
 * A payload's XXH64, fed its bytes in order in any chunking. The converter takes it of each payload
 * it writes past the page cache, and validation's pass over the finished file takes it again of
 * what the disk holds: equal digests mean the disk holds what was written, which hashes to the
 * header's sha256 (the worker hashed those same bytes). It replaces a second sha256 of those
 * payloads (slot.ts), which cost about 0.6 CPU-seconds per GB (docs/ternarization.md).
 *
 * Whole stripes run in WebAssembly: in place when `kernels` holds the bytes, else copied through
 * `scratch` (a view of the kernels' memory, its length a multiple of 32), else in TypeScript,
 * which is slow (BigInt): with `inPlaceOnly`, bytes outside the kernels' memory make the checksum
 * `lost` instead, and the caller leaves that payload to sha256.
 */
export class PayloadChecksum {
  private readonly acc = xxh64Initial();
  private readonly tail = new Uint8Array(XXH64_STRIPE);
  private tailBytes = 0;
  private total = 0;
  private gaveUp = false;

  constructor(
    private readonly kernels?: WasmKernels,
    private readonly scratch?: Uint8Array,
    private readonly inPlaceOnly = false,
  ) {}

  /** Some bytes were outside the kernels' memory (`inPlaceOnly`): there is no digest. */
  get lost(): boolean {
    return this.gaveUp;
  }

  update(bytes: Uint8Array): void {
    if (this.gaveUp) return;
    if (this.inPlaceOnly && bytes.byteLength > 0 && this.kernels?.holds(bytes) !== true) {
      this.gaveUp = true;
      return;
    }
    this.total += bytes.byteLength;
    let at = 0;
    if (this.tailBytes > 0) {
      at = Math.min(XXH64_STRIPE - this.tailBytes, bytes.byteLength);
      this.tail.set(bytes.subarray(0, at), this.tailBytes);
      this.tailBytes += at;
      if (this.tailBytes < XXH64_STRIPE) return;
      xxh64Stripes(this.acc, this.tail);
      this.tailBytes = 0;
    }
    const rest = bytes.byteLength - at;
    const whole = rest - (rest % XXH64_STRIPE);
    this.stripes(bytes.subarray(at, at + whole));
    this.tail.set(bytes.subarray(at + whole), 0);
    this.tailBytes = rest - whole;
  }

  /** 16 lowercase hex digits. */
  digest(): string {
    return xxh64Digest(this.acc, this.tail.subarray(0, this.tailBytes), this.total).toString(16).padStart(16, "0");
  }

  private stripes(bytes: Uint8Array): void {
    const { kernels, scratch } = this;
    if (kernels === undefined || bytes.byteLength === 0) return xxh64Stripes(this.acc, bytes);
    if (kernels.holds(bytes)) return kernels.xxh64Stripes(this.acc, bytes);
    if (scratch === undefined || !kernels.holds(scratch)) return xxh64Stripes(this.acc, bytes);
    const piece = scratch.byteLength - (scratch.byteLength % XXH64_STRIPE);
    for (let at = 0; at < bytes.byteLength; at += piece) {
      const part = bytes.subarray(at, at + piece);
      scratch.set(part);
      kernels.xxh64Stripes(this.acc, scratch.subarray(0, part.byteLength));
    }
  }
}

/** A payload's sha256 and XXH64 as its worker wrote it (jobs.ts). */
export interface WrittenChecksum {
  readonly sha256: string;
  readonly xxh64: string;
}

/**
 * PayloadScanner's twin for a payload whose checksum the converter took: fed the payload's bytes
 * from the file, then its padding. Equal digests vouch that the file holds the bytes written,
 * which hash to `written.sha256`; the NaN/Inf count is the converter's, not this scan's.
 */
export class ChecksumScanner {
  private badPadding = false;

  constructor(
    private readonly written: WrittenChecksum,
    private readonly checksum: PayloadChecksum,
  ) {}

  update(bytes: Uint8Array): void {
    this.checksum.update(bytes);
  }

  padding(bytes: Uint8Array): void {
    if (bytes.some((b) => b !== 0)) this.badPadding = true;
  }

  finish(): PayloadScan {
    const damaged = this.checksum.digest() !== this.written.xxh64;
    return { damaged, badPadding: this.badPadding, sha256: damaged ? "" : this.written.sha256, nonFinite: 0 };
  }
}
