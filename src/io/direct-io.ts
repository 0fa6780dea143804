import { closeSync, constants, openSync, readSync, writeSync } from "node:fs";

/**
 * Direct I/O (O_DIRECT, Linux): whole blocks between the file and our memory, no page cache. A
 * converter's output is written once and not read again soon, and on the machines we measured,
 * putting 1 GiB through the page cache cost 2.4-2.8 CPU-seconds of kernel time (filling fresh
 * cache pages), against 0.06-0.16 with O_DIRECT and a faster wall time (`npm run bench`'s write
 * floors). The rules
 * O_DIRECT imposes: file offset, length and memory address all multiples of the device's logical
 * block; DIRECT_BLOCK (4096) covers every block size in use and is one page on x86-64, so a block
 * written directly shares no cache page with bytes written through the cache (with larger pages the
 * kernel keeps the two coherent, at some cost).
 *
 * Where the platform or the filesystem refuses O_DIRECT (macOS, Windows, tmpfs...), nothing here is
 * used: openDirect() gives undefined and callers keep writing through the cache.
 */
export const DIRECT_BLOCK = 4096;

const O_DIRECT: number | undefined = (constants as Record<string, number | undefined>).O_DIRECT;

/** A second descriptor on `path` that bypasses the page cache, or undefined where O_DIRECT is not available. */
export function openDirect(path: string): number | undefined {
  if (O_DIRECT === undefined || O_DIRECT === 0) return undefined;
  try {
    return openSync(path, constants.O_RDWR | O_DIRECT);
  } catch {
    return undefined;
  }
}

export function closeDirect(fd: number | undefined): void {
  if (fd === undefined || fd < 0) return;
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/**
 * `bytes` of block-aligned memory. A WebAssembly memory starts on a page boundary (engines map it
 * whole), which an ArrayBuffer does not promise, so aligned buffers are views of one.
 */
export function alignedBuffer(bytes: number): Uint8Array {
  if (bytes % DIRECT_BLOCK !== 0) throw new RangeError(`aligned buffers are whole blocks, not ${bytes} bytes`);
  const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536) });
  return new Uint8Array(memory.buffer, 0, bytes);
}

/** Writes all of `bytes` (aligned, whole blocks) at `position` through a direct descriptor. */
export function writeDirect(fd: number, bytes: Uint8Array, position: number): void {
  for (let done = 0; done < bytes.byteLength; ) done += writeSync(fd, bytes, done, bytes.byteLength - done, position + done);
}

/** Reads `into.byteLength` bytes (aligned, whole blocks) at `position` through a direct descriptor; fewer only at the end of the file. */
export function readDirect(fd: number, into: Uint8Array, position: number): number {
  let done = 0;
  while (done < into.byteLength) {
    const read = readSync(fd, into, done, into.byteLength - done, position + done);
    if (read === 0) break;
    done += read;
    if (done % DIRECT_BLOCK !== 0) break; // a short read ends at the end of the file
  }
  return done;
}
