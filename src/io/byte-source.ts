import { readSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { basename } from "node:path";
import { B158Error, ioError } from "../errors.js";

/**
 * The one seam through which formats read bytes: a local file, memory (tests), or later an
 * HTTP range reader on the Hub. Formats never import node:fs or fetch directly.
 */
export interface ByteSource {
  /** What error messages call this source (a path, or a URL). */
  readonly name: string;
  /** Total size in bytes. */
  readonly size: number;
  /**
   * Exactly `length` bytes starting at `offset`. Throws E_SAFETENSORS_TRUNCATED-style errors
   * are the caller's job; a source throws E_IO when the bytes cannot be produced. With `into`
   * (at least `length` bytes), a source may read into it and return a view of it: a caller that
   * reuses buffers saves allocating fresh zeroed memory for every large read.
   */
  read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
  /**
   * The same read on the calling thread, where the source can (local files). A worker thread uses
   * it to land small pieces in its own core's cache right before it processes them.
   */
  readSync?(offset: number, length: number, into?: Uint8Array): Uint8Array;
  close(): Promise<void>;
}

export function memorySource(name: string, bytes: Uint8Array): ByteSource {
  return {
    name,
    size: bytes.byteLength,
    async read(offset, length) {
      checkRange(name, bytes.byteLength, offset, length);
      return bytes.subarray(offset, offset + length);
    },
    async close() {},
  };
}

export async function fileSource(path: string): Promise<ByteSource> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (cause) {
    throw ioError(path, "open", cause);
  }
  let size: number;
  try {
    size = (await handle.stat()).size;
  } catch (cause) {
    await handle.close();
    throw ioError(path, "stat", cause);
  }
  return {
    name: path,
    size,
    async read(offset, length, into) {
      checkRange(path, size, offset, length);
      const out = into !== undefined && into.byteLength >= length ? into.subarray(0, length) : new Uint8Array(length);
      let done = 0;
      try {
        while (done < length) {
          const { bytesRead } = await handle.read(out, done, length - done, offset + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
      } catch (cause) {
        throw ioError(path, `read ${length} bytes at offset ${offset}`, cause);
      }
      return checkShrank(path, out, offset, done);
    },
    readSync(offset, length, into) {
      checkRange(path, size, offset, length);
      const out = into !== undefined && into.byteLength >= length ? into.subarray(0, length) : new Uint8Array(length);
      let done = 0;
      try {
        while (done < length) {
          const bytesRead = readSync(handle.fd, out, done, length - done, offset + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
      } catch (cause) {
        throw ioError(path, `read ${length} bytes at offset ${offset}`, cause);
      }
      return checkShrank(path, out, offset, done);
    },
    async close() {
      await handle.close();
    },
  };
}

/**
 * Bytes [offset, offset + into.length) of `source` into `into` (copied when a source hands back a
 * view of its own memory instead): for readers that fill buffers they do not own.
 */
export async function readInto(source: ByteSource, offset: number, into: Uint8Array): Promise<void> {
  const got = await source.read(offset, into.byteLength, into);
  if (got.buffer !== into.buffer || got.byteOffset !== into.byteOffset) into.set(got);
}

/** A file opened and handed to `open`, which keeps it (a reader closes it later); closed if `open` fails. */
export async function openFileWith<T>(path: string, open: (source: ByteSource) => Promise<T>): Promise<T> {
  const source = await fileSource(path);
  try {
    return await open(source);
  } catch (error) {
    await source.close();
    throw error;
  }
}

/**
 * `length` bytes from `offset` in chunks, the next read already in flight while one is consumed.
 * With `reuse`, two buffers take turns: a chunk is valid only until the consumer asks for the next
 * one (hashing and scanning consumers), and large reads stop costing fresh zeroed memory.
 */
export async function* readAhead(source: ByteSource, offset: number, length: number, chunkBytes = 8 * 1024 * 1024, reuse = false): AsyncGenerator<Uint8Array> {
  const size = Math.min(chunkBytes, length);
  const buffers = reuse ? [new Uint8Array(size), new Uint8Array(size)] : undefined;
  let turn = 0;
  const read = (at: number) => source.read(offset + at, Math.min(chunkBytes, length - at), buffers?.[turn++ % 2]);
  let next = length > 0 ? read(0) : undefined;
  try {
    for (let done = 0; next !== undefined; ) {
      const chunk = await next;
      done += chunk.byteLength;
      next = done < length ? read(done) : undefined;
      yield chunk;
    }
  } finally {
    // a consumer that stops early leaves a read in flight: its failure is nobody's to report
    next?.catch(() => undefined);
  }
}

function checkShrank(path: string, out: Uint8Array, offset: number, done: number): Uint8Array {
  if (done !== out.byteLength) {
    throw new B158Error("E_IO", `${path}: file shrank while reading (wanted ${out.byteLength} bytes at ${offset}, got ${done})`, {
      details: { file: path, offset, length: out.byteLength, got: done },
    });
  }
  return out;
}

function checkRange(name: string, size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new B158Error("E_INTERNAL", `${basename(name)}: read of ${length} bytes at ${offset} is outside the ${size}-byte source`, {
      details: { file: name, offset, length, size },
    });
  }
}
