import type { ByteSource } from "../../src/io/byte-source.js";

/** Wraps a ByteSource and records the largest single read, to prove hostile headers cause no huge reads. */
export function countingSource(inner: ByteSource): ByteSource & { largestRead: number; totalRead: number } {
  const counter = {
    name: inner.name,
    size: inner.size,
    largestRead: 0,
    totalRead: 0,
    async read(offset: number, length: number) {
      counter.largestRead = Math.max(counter.largestRead, length);
      counter.totalRead += length;
      return inner.read(offset, length);
    },
    close: () => inner.close(),
  };
  return counter;
}
