import { createHash, randomBytes } from "node:crypto";
import { access, constants, lstat, open, readdir, rename, rm, stat, type FileHandle } from "node:fs/promises";
import { hostname } from "node:os";
import { basename, dirname, join } from "node:path";
import { B158Error, ioError } from "../errors.js";
import type { Diagnostic } from "../model/diagnostics.js";
import { closeDirect, openDirect } from "./direct-io.js";
import { isRunning } from "./lock-file.js";

/**
 * An output file that appears whole or not at all: bytes go by position into a hidden temp file
 * beside the target (same filesystem, so the rename is atomic), which is flushed to disk and
 * renamed onto the target only by publish(). abort() removes it. Both writers (.b158, GGUF) use it.
 *
 * Temp files are named after their target and their owner: `.<target>.b158-<host>-<pid>-<random>.partial`.
 * A run killed by SIGKILL cannot remove its own; the next run for the same target removes those
 * whose process is gone on this host, and names the ones it cannot judge (prepareOutput).
 */
export class AtomicFile {
  private closed = false;
  private flushed: Promise<void> | undefined;
  private flushing: Promise<void> | undefined;

  private directDescriptor: number | undefined;

  private constructor(
    readonly path: string,
    readonly tempPath: string,
    private readonly handle: FileHandle,
  ) {}

  /**
   * Checks the target (checkOutputPath), then opens the temp file. `direct`: also open it with
   * O_DIRECT where the platform and filesystem allow (directFd), for writers of whole blocks.
   */
  static async create(path: string, force = false, direct = false): Promise<AtomicFile> {
    await checkOutputPath(path, force);
    const tempPath = partialPath(path);
    let file: AtomicFile;
    try {
      file = new AtomicFile(path, tempPath, await open(tempPath, "wx+"));
    } catch (cause) {
      throw ioError(dirname(path), `create a temporary file for ${basename(path)} in`, cause);
    }
    if (direct) file.directDescriptor = openDirect(tempPath);
    return file;
  }

  /** The open temp file's descriptor (read and write), for threads that write into it directly, by position. */
  get fd(): number {
    return this.handle.fd;
  }

  /** A descriptor of the temp file that bypasses the page cache (direct-io.ts), or -1 where there is none. */
  get directFd(): number {
    return this.directDescriptor ?? -1;
  }

  private closeDirect(): void {
    closeDirect(this.directDescriptor);
    this.directDescriptor = undefined;
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
      this.closeDirect();
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

  /**
   * Waits for the flush, then renames the temp file onto the target: the only moment the target
   * changes. The target is checked again first: something other than a regular file may have
   * appeared there during a long conversion, and rename would replace it.
   */
  async publish(): Promise<void> {
    try {
      await this.flushed;
      await refuseSpecial(this.path);
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
      this.closeDirect();
      await this.handle.close().catch(() => undefined);
    }
    await this.flushed?.catch(() => undefined);
    await rm(this.tempPath, { force: true }).catch(() => undefined);
  }
}

/** This process, as temp file names record it: `b158-<host>-<pid>` (host: 8 hex digits of its name's sha256). */
const HOST = createHash("sha256").update(hostname()).digest("hex").slice(0, 8);
const OWNER = `b158-${HOST}-${process.pid}`;

/** A fresh temp path beside `target`, owned by this process; `suffix` tells its use (e.g. ".b158" for convert's staging file). */
export function partialPath(target: string, suffix = ""): string {
  return join(dirname(target), `.${basename(target)}.${OWNER}-${randomBytes(6).toString("hex")}${suffix}.partial`);
}

/**
 * Before any work: the output must be a new file in an existing folder, or with `force` an existing
 * regular file (or a link to one). A directory, a device, a FIFO or a socket is never replaced
 * (as root, `-o /dev/null --force` would otherwise replace the system's /dev/null): E_OUTPUT_PATH.
 * An existing file without `force` is E_OUTPUT_EXISTS.
 */
export async function checkOutputPath(path: string, force = false): Promise<void> {
  const existing = await lstat(path).catch((cause: NodeJS.ErrnoException) => (cause.code === "ENOENT" ? undefined : Promise.reject(ioError(path, "check the output path", cause))));
  if (existing === undefined) {
    const folder = dirname(path);
    const parent = await stat(folder).catch(() => undefined);
    if (parent === undefined || !parent.isDirectory()) {
      throw new B158Error("E_OUTPUT_PATH", `${path}: the folder ${folder} ${parent === undefined ? "does not exist" : "is not a directory"}`, {
        hint: parent === undefined ? `Create it first (mkdir -p ${folder}), or choose another -o path.` : "Choose an -o path inside a directory.",
        details: { file: path, folder },
      });
    }
    await access(folder, constants.W_OK).catch((cause: unknown) => Promise.reject(ioError(folder, `write ${basename(path)} in`, cause)));
    return;
  }
  await refuseSpecial(path);
  if (!force) {
    throw new B158Error("E_OUTPUT_EXISTS", `${path}: already exists`, { hint: "Pass --force to replace it, or choose another -o path.", details: { file: path } });
  }
}

/** E_OUTPUT_PATH when `path` (followed through links) is anything but a regular file; nothing there is fine. */
async function refuseSpecial(path: string): Promise<void> {
  const target = await stat(path).catch(() => undefined);
  if (target === undefined || target.isFile()) return;
  const kind = target.isDirectory() ? "a directory" : target.isCharacterDevice() ? "a character device" : target.isBlockDevice() ? "a block device" : target.isFIFO() ? "a FIFO" : target.isSocket() ? "a socket" : "not a regular file";
  throw new B158Error("E_OUTPUT_PATH", `${path}: is ${kind}; b158 writes regular files only and never replaces anything else, even with --force`, {
    hint: target.isDirectory() ? `Name a file inside it, e.g. -o ${join(path, "model.b158")}.` : "Choose a regular file path for -o.",
    details: { file: path, kind },
  });
}

/**
 * Everything an output needs before any work starts: checkOutputPath, then the temp files that
 * runs for the same target left behind (killed by SIGKILL, or a crash). Those of a process that is
 * gone on this host are removed; those of another host, or of b158 versions that did not record an
 * owner, are left and named (W_STALE_PARTIAL). A live process's temp file is never touched.
 */
export async function prepareOutput(path: string, force = false): Promise<Diagnostic[]> {
  await checkOutputPath(path, force);
  const folder = dirname(path);
  const names = await readdir(folder).catch(() => [] as string[]);
  const base = basename(path).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  // leading dots: convert --format gguf stages a .b158 beside the target, whose own temp file adds one
  const owned = new RegExp(`^\\.+${base}\\.b158-([0-9a-f]{8})-(\\d+)-[0-9a-f]{12}.*\\.partial$`);
  const legacy = new RegExp(`^\\.+${base}\\.[0-9a-f]{12}(?:\\.b158)?\\.partial$`);
  const notes: Diagnostic[] = [];
  const warn = (message: string) => notes.push({ severity: "warning", code: "W_STALE_PARTIAL", message, file: path });
  for (const name of names.sort()) {
    const stale = join(folder, name);
    const match = owned.exec(name);
    if (match !== null) {
      const [, host, pidText] = match;
      const pid = Number(pidText);
      if (host === HOST && pid === process.pid) continue;
      if (host !== HOST) warn(`${stale}: a temp file of ${basename(path)} from a run on another host; left alone (delete it if no conversion is running there)`);
      else if (isRunning(pid)) warn(`${stale}: a temp file of ${basename(path)} being written by process ${pid}; left alone`);
      else {
        await rm(stale, { force: true }).catch((cause: unknown) => Promise.reject(ioError(stale, "remove a stale temp file", cause)));
        warn(`${stale}: removed, a temp file of ${basename(path)} left by an interrupted run (process ${pid} is gone)`);
      }
    } else if (legacy.test(name)) {
      warn(`${stale}: a temp file of ${basename(path)} from an older b158 that did not record its process; left alone (delete it if no conversion is running)`);
    }
  }
  return notes;
}
