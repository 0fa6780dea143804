import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { B158Error } from "../errors.js";
import type { ChunkBuffers } from "../io/file-hash.js";
import type { PayloadRange, PayloadScan } from "./payload-scan.js";

/**
 * Validation's second thread: the reading thread hashes the whole file while this one hashes and
 * scans the payloads it is given, from the same chunks, read once into memory both threads share.
 * Both are sha256 over the same bytes, so two threads halve the pass (a file just written with
 * O_DIRECT is otherwise hashed twice on one core, slower than the disk reads it).
 *
 * The chunk buffers are this object's: fileChunks takes one to read into (waiting until one is
 * free), the reader sends it here with `send`, and the helper frees it once it has scanned it.
 */
export type ScanMessage =
  | { readonly kind: "start"; readonly ranges: readonly PayloadRange[]; readonly memory: SharedArrayBuffer; readonly chunkBytes: number }
  | { readonly kind: "chunk"; readonly buffer: number; readonly length: number; readonly position: number }
  | { readonly kind: "finish" };

export type ScanReply = { readonly kind: "free"; readonly buffer: number } | { readonly kind: "done"; readonly payloads: readonly PayloadScan[] } | { readonly kind: "error"; readonly message: string };

/** Chunks in the ring: one being read ahead, one with the reader, two with the helper. */
const BUFFERS = 4;

export class ScanHelper implements ChunkBuffers {
  private readonly buffers: Uint8Array[] = [];
  private readonly free: number[] = [];
  private readonly waiting: { resolve: (buffer: Uint8Array) => void; reject: (error: unknown) => void }[] = [];
  private finished: { resolve: (payloads: readonly PayloadScan[]) => void; reject: (error: unknown) => void } | undefined;
  private failure: { error: unknown } | undefined;
  private closing = false;

  /** A helper scanning `ranges` (in file order), or undefined where the compiled worker is not there (TypeScript sources). */
  static start(ranges: readonly PayloadRange[], chunkBytes: number, file: string): ScanHelper | undefined {
    const script = new URL("./scan-worker.js", import.meta.url);
    if (!existsSync(fileURLToPath(script))) return undefined;
    return new ScanHelper(new Worker(script), ranges, chunkBytes, file);
  }

  private constructor(
    private readonly worker: Worker,
    ranges: readonly PayloadRange[],
    private readonly chunkBytes: number,
    private readonly file: string,
  ) {
    // a shared WebAssembly memory: page-aligned, as O_DIRECT reads need (direct-io.ts)
    const pages = Math.ceil((BUFFERS * chunkBytes) / 65536);
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true }).buffer as unknown as SharedArrayBuffer;
    for (let i = 0; i < BUFFERS; i++) {
      this.buffers.push(new Uint8Array(memory, i * chunkBytes, chunkBytes));
      this.free.push(i);
    }
    worker.on("message", (reply: ScanReply) => this.receive(reply));
    worker.on("error", (error) => this.fail(new B158Error("E_INTERNAL", `${file}: the validation thread failed: ${error.message}`, { cause: error })));
    // a thread that ends without an error (or before it answered) must not leave the reader waiting for buffers
    worker.on("exit", (code) => {
      if (!this.closing) this.fail(new B158Error("E_INTERNAL", `${file}: the validation thread exited (code ${code}) before the pass ended`));
    });
    worker.postMessage({ kind: "start", ranges, memory, chunkBytes } satisfies ScanMessage);
  }

  /** A free buffer to read a chunk into. */
  take(): Promise<Uint8Array> {
    if (this.failure !== undefined) return Promise.reject(this.failure.error);
    const index = this.free.pop();
    if (index !== undefined) return Promise.resolve(this.buffers[index]!);
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** Hands the chunk at `position` (a view of one of this helper's buffers) to the helper, which frees its buffer when done. */
  send(chunk: Uint8Array, position: number): void {
    const buffer = Math.floor(chunk.byteOffset / this.chunkBytes);
    if (chunk.buffer !== this.buffers[0]!.buffer || chunk.byteOffset !== buffer * this.chunkBytes) throw new B158Error("E_INTERNAL", `${this.file}: a chunk sent for scanning is not one of the helper's buffers`);
    this.worker.postMessage({ kind: "chunk", buffer, length: chunk.byteLength, position } satisfies ScanMessage);
  }

  /** The scans, in the order of the ranges, once every chunk sent has been scanned. */
  finish(): Promise<readonly PayloadScan[]> {
    if (this.failure !== undefined) return Promise.reject(this.failure.error);
    return new Promise((resolve, reject) => {
      this.finished = { resolve, reject };
      this.worker.postMessage({ kind: "finish" } satisfies ScanMessage);
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.worker.terminate();
  }

  private receive(reply: ScanReply): void {
    if (reply.kind === "free") {
      const waiter = this.waiting.shift();
      if (waiter !== undefined) waiter.resolve(this.buffers[reply.buffer]!);
      else this.free.push(reply.buffer);
    } else if (reply.kind === "done") this.finished?.resolve(reply.payloads);
    else this.fail(new B158Error("E_INTERNAL", `${this.file}: the validation thread failed: ${reply.message}`));
  }

  private fail(error: unknown): void {
    this.failure ??= { error };
    for (const waiter of this.waiting.splice(0)) waiter.reject(error);
    this.finished?.reject(error);
  }
}
