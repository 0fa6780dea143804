import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { fileSource, readInto } from "./byte-source.js";
import { alignedBuffer, DIRECT_BLOCK } from "./direct-io.js";

export interface FileHashOptions {
  /**
   * Read with O_DIRECT (io/direct-io.ts), for a file just written that way: it is not in the page
   * cache, and reading it through the cache would fill as many fresh pages as it has bytes. Falls
   * back to cached reads where O_DIRECT is refused.
   */
  readonly direct?: boolean;
  /** Bytes per read: whole 4096-byte blocks (default 8 MiB; tests use small ones to cross many chunk edges). */
  readonly chunkBytes?: number;
  /**
   * Where chunks are read into (fileChunks). Default: two buffers taking turns, so a chunk is valid
   * until the next one is asked for.
   */
  readonly buffers?: ChunkBuffers;
}

/** Buffers to read chunks into: each `chunkBytes` long and block-aligned; `take` waits until one is free. */
export interface ChunkBuffers {
  take(): Promise<Uint8Array>;
}

/** sha256 of a whole file, read in 8 MiB chunks, the next read in flight while one is hashed (constant memory). */
export async function fileSha256(path: string, options: FileHashOptions = {}): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of fileChunks(path, options)) hash.update(chunk);
  return hash.digest("hex");
}

export const DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024;

/**
 * A whole file in order, in chunks of `chunkBytes` (fewer bytes only at the end), the next read in
 * flight while one is consumed. With `direct`, read with O_DIRECT where the file takes it.
 */
export async function* fileChunks(path: string, options: FileHashOptions = {}): AsyncGenerator<Uint8Array> {
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!(chunkBytes > 0) || chunkBytes % DIRECT_BLOCK !== 0) throw new RangeError(`file chunks are whole blocks, not ${chunkBytes} bytes`);
  const buffers = options.buffers ?? takingTurns(chunkBytes);
  const firstBuffer = (await buffers.take()).subarray(0, chunkBytes);
  const opened = (options.direct === true ? await openDirectReader(path, firstBuffer) : undefined) ?? (await openCachedReader(path, firstBuffer));
  let pending: Promise<number> | undefined;
  try {
    let length = opened.first;
    for (let position = 0, current = firstBuffer; length > 0; ) {
      // a short chunk is the end of the file
      if (length < chunkBytes) {
        yield current.subarray(0, length);
        return;
      }
      const next = (await buffers.take()).subarray(0, chunkBytes);
      const reading = opened.reader.read(next, position + length);
      pending = reading;
      yield current;
      position += length;
      length = await reading;
      pending = undefined;
      current = next;
    }
  } finally {
    // a consumer that stops early: the read in flight must end before its descriptor closes
    await pending?.catch(() => undefined);
    await opened.reader.close();
  }
}

/** Two buffers of `chunkBytes` at the start of `both` (block-aligned), handed out in turn. */
export function takingTurns(chunkBytes: number, both: Uint8Array = alignedBuffer(2 * chunkBytes)): ChunkBuffers {
  let turn = 0;
  return {
    take: async () => {
      const at = (turn++ % 2) * chunkBytes;
      return both.subarray(at, at + chunkBytes);
    },
  };
}

interface ChunkReader {
  /** Fills `into` from `position`: its length, or fewer bytes at the end of the file. */
  read(into: Uint8Array, position: number): Promise<number>;
  close(): Promise<void>;
}

const O_DIRECT = (constants as Record<string, number | undefined>).O_DIRECT;

/** A reader through O_DIRECT, with its first chunk read into `first`; undefined if the file or that read refuses it. */
async function openDirectReader(path: string, first: Uint8Array): Promise<{ reader: ChunkReader; first: number } | undefined> {
  if (O_DIRECT === undefined || O_DIRECT === 0) return undefined;
  const handle = await open(path, constants.O_RDONLY | O_DIRECT).catch(() => undefined);
  if (handle === undefined) return undefined;
  const reader: ChunkReader = { read: (into, position) => readBlocks(handle, into, position), close: () => handle.close() };
  try {
    return { reader, first: await reader.read(first, 0) };
  } catch {
    await handle.close();
    return undefined; // opened, but direct reads refused here
  }
}

async function openCachedReader(path: string, first: Uint8Array): Promise<{ reader: ChunkReader; first: number }> {
  const source = await fileSource(path);
  const reader: ChunkReader = {
    async read(into, position) {
      const length = Math.max(0, Math.min(into.byteLength, source.size - position));
      if (length > 0) await readInto(source, position, into.subarray(0, length));
      return length;
    },
    close: () => source.close(),
  };
  try {
    return { reader, first: await reader.read(first, 0) };
  } catch (error) {
    await source.close();
    throw error;
  }
}

/** Fills `buffer` from `position`, or fewer bytes at the end of the file. */
async function readBlocks(handle: FileHandle, buffer: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < buffer.byteLength) {
    const { bytesRead } = await handle.read(buffer, done, buffer.byteLength - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
    if (done % DIRECT_BLOCK !== 0) break; // the end of the file
  }
  return done;
}
