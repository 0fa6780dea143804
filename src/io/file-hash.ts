import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { fileSource, readAhead } from "./byte-source.js";
import { alignedBuffer, DIRECT_BLOCK } from "./direct-io.js";

export interface FileHashOptions {
  /**
   * Read with O_DIRECT (io/direct-io.ts), for a file just written that way: it is not in the page
   * cache, and reading it through the cache would fill as many fresh pages as it has bytes. Falls
   * back to cached reads where O_DIRECT is refused.
   */
  readonly direct?: boolean;
}

/** sha256 of a whole file, read in 8 MiB chunks, the next read in flight while one is hashed (constant memory). */
export async function fileSha256(path: string, options: FileHashOptions = {}): Promise<string> {
  if (options.direct === true) {
    const hashed = await directSha256(path);
    if (hashed !== undefined) return hashed;
  }
  const source = await fileSource(path);
  const hash = createHash("sha256");
  try {
    for await (const chunk of readAhead(source, 0, source.size, undefined, true)) hash.update(chunk);
  } finally {
    await source.close();
  }
  return hash.digest("hex");
}

const DIRECT_CHUNK = 8 * 1024 * 1024;
const O_DIRECT = (constants as Record<string, number | undefined>).O_DIRECT;

/** The same hash through O_DIRECT reads into two aligned buffers (one read in flight while the other is hashed); undefined if refused. */
async function directSha256(path: string): Promise<string | undefined> {
  if (O_DIRECT === undefined || O_DIRECT === 0) return undefined;
  const handle = await open(path, constants.O_RDONLY | O_DIRECT).catch(() => undefined);
  if (handle === undefined) return undefined;
  try {
    const both = alignedBuffer(2 * DIRECT_CHUNK);
    const buffers = [both.subarray(0, DIRECT_CHUNK), both.subarray(DIRECT_CHUNK)];
    const hash = createHash("sha256");
    const readAt = async (buffer: Uint8Array, position: number): Promise<number> => {
      let done = 0;
      while (done < buffer.byteLength) {
        const { bytesRead } = await handle.read(buffer, done, buffer.byteLength - done, position + done);
        if (bytesRead === 0) break;
        done += bytesRead;
        if (done % DIRECT_BLOCK !== 0) break; // the end of the file
      }
      return done;
    };
    let position = 0;
    let pending: Promise<number>;
    try {
      pending = Promise.resolve(await readAt(buffers[0]!, 0));
    } catch {
      return undefined; // opened, but direct reads refused here
    }
    for (let turn = 0; ; turn++) {
      const length = await pending;
      const current = buffers[turn % 2]!;
      if (length === DIRECT_CHUNK) pending = readAt(buffers[(turn + 1) % 2]!, position + length);
      hash.update(current.subarray(0, length));
      position += length;
      if (length < DIRECT_CHUNK) break;
    }
    return hash.digest("hex");
  } finally {
    await handle.close();
  }
}
