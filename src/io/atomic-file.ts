import { randomBytes } from "node:crypto";
import { open, rename, rm, stat, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { B158Error, ioError } from "../errors.js";

/**
 * An output file that appears whole or not at all: bytes go by position into a hidden temp file
 * beside the target (same filesystem, so the rename is atomic), which is flushed to disk and
 * renamed onto the target only by publish(). abort() removes it. Both writers (.b158, GGUF) use it.
 */
export class AtomicFile {
  private closed = false;
  private flushed: Promise<void> | undefined;
  private flushing: Promise<void> | undefined;

  private constructor(
    readonly path: string,
    readonly tempPath: string,
    private readonly handle: FileHandle,
  ) {}

  /** Refuses an existing target unless `force`, then opens the temp file. */
  static async create(path: string, force = false): Promise<AtomicFile> {
    await refuseExisting(path, force);
    const tempPath = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.partial`);
    try {
      return new AtomicFile(path, tempPath, await open(tempPath, "wx+"));
    } catch (cause) {
      throw ioError(path, "create a temporary file beside", cause);
    }
  }

  /** The open temp file's descriptor (read and write), for threads that write into it directly, by position. */
  get fd(): number {
    return this.handle.fd;
  }

  async write(bytes: Uint8Array, position: number): Promise<void> {
    try {
      let done = 0;
      while (done < bytes.byteLength) {
        const { bytesWritten } = await this.handle.write(bytes, done, bytes.byteLength - done, position + done);
        done += bytesWritten;
      }
    } catch (cause) {
      throw ioError(this.path, "write", cause);
    }
  }

  /**
   * Starts flushing what is written so far, while writing goes on, so the final flush has less
   * left to wait for; one at a time. A failure here is left to the final flush to report.
   */
  flushSoFar(): void {
    if (this.closed || this.flushing !== undefined) return;
    this.flushing = this.handle.datasync().then(
      () => void (this.flushing = undefined),
      () => void (this.flushing = undefined),
    );
  }

  /**
   * Sets the final size and starts the flush to disk; the complete file can be read at tempPath
   * (validated there) while it is flushed. publish() waits for the flush.
   */
  async finish(size: number): Promise<void> {
    try {
      await this.flushing;
      await this.handle.truncate(size);
    } catch (cause) {
      await this.abort();
      throw ioError(this.path, "finish writing", cause);
    }
    this.closed = true;
    this.flushed = this.handle.sync().finally(() => this.handle.close());
    // a failed flush is reported by publish() (or dropped by abort())
    this.flushed.catch(() => undefined);
  }

  /** Waits for the flush, then renames the temp file onto the target: the only moment the target changes. */
  async publish(): Promise<void> {
    try {
      await this.flushed;
      await rename(this.tempPath, this.path);
    } catch (cause) {
      await this.abort();
      throw ioError(this.path, "finish writing", cause);
    }
  }

  /** Closes and removes the temp file; the target is untouched. Safe to call more than once. */
  async abort(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.flushing;
      await this.handle.close().catch(() => undefined);
    }
    await this.flushed?.catch(() => undefined);
    await rm(this.tempPath, { force: true }).catch(() => undefined);
  }
}

/** E_OUTPUT_EXISTS unless `force`: also for callers that must refuse before minutes of work. */
export async function refuseExisting(path: string, force = false): Promise<void> {
  if (!force && (await stat(path).then(() => true, () => false))) {
    throw new B158Error("E_OUTPUT_EXISTS", `${path}: already exists`, { hint: "Pass --force to replace it, or choose another -o path.", details: { file: path } });
  }
}
