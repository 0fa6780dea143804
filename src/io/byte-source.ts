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
   * are the caller's job; a source throws E_IO when the bytes cannot be produced.
   */
  read(offset: number, length: number): Promise<Uint8Array>;
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
    async read(offset, length) {
      checkRange(path, size, offset, length);
      const out = new Uint8Array(length);
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
      if (done !== length) {
        throw new B158Error("E_IO", `${path}: file shrank while reading (wanted ${length} bytes at ${offset}, got ${done})`, {
          details: { file: path, offset, length, got: done },
        });
      }
      return out;
    },
    async close() {
      await handle.close();
    },
  };
}

function checkRange(name: string, size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new B158Error("E_INTERNAL", `${basename(name)}: read of ${length} bytes at ${offset} is outside the ${size}-byte source`, {
      details: { file: name, offset, length, size },
    });
  }
}
