import type { ByteSource } from "../../src/io/byte-source.js";

export interface CountingSource extends ByteSource {
  /** The longest single read asked for, in bytes. */
  readonly largestRead: number;
  /** Bytes asked for over all reads. */
  readonly totalRead: number;
  readonly reads: number;
}

/**
 * Wraps a ByteSource and records every read. Readers allocate only what they read (fileSource
 * allocates exactly `length`), so `largestRead <= size` proves a hostile header (a 2^63 length, a
 * 10^15-element shape) caused no read, and no buffer, beyond the file it came from.
 */
export function countingSource(inner: ByteSource): CountingSource {
  let largestRead = 0;
  let totalRead = 0;
  let reads = 0;
  return {
    name: inner.name,
    size: inner.size,
    get largestRead() {
      return largestRead;
    },
    get totalRead() {
      return totalRead;
    },
    get reads() {
      return reads;
    },
    async read(offset: number, length: number) {
      reads++;
      largestRead = Math.max(largestRead, length);
      totalRead += length;
      return inner.read(offset, length);
    },
    close: () => inner.close(),
  };
}
