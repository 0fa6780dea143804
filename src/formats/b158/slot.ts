import { createHash } from "node:crypto";
import { readSync, write, writeSync } from "node:fs";
import { promisify } from "node:util";
import { B158Error, ioError } from "../../errors.js";
import { alignedBuffer, DIRECT_BLOCK, writeDirect } from "../../io/direct-io.js";
import { alignUp } from "./spec.js";

/**
 * Where one payload goes in a .b158 being written, in a form a worker thread can use: the temp
 * file's descriptor (shared by every thread of the process, open for reading and writing) and fixed
 * positions. The thread that made a payload writes and hashes it while its bytes are still in that
 * core's cache, so the writer's thread only collects hashes (B158Writer.slot / record). Writes
 * through the page cache are read back from the file at once and compared with what was written
 * (validate-b158.ts trusts such a payload once that matched): Slots never overlap and a SlotWriter
 * cannot write outside its own, so what was read back right after writing is what the finished file
 * holds. Direct writes are not read back: that would be a second trip to the disk for every byte,
 * and validation reads the finished file from the disk once anyway (for its whole-file sha256), so
 * it checks those payloads in the same pass, against a checksum of what was written (`observe`).
 */
export interface PayloadSlot {
  /** Descriptor of the open temp file. */
  readonly fd: number;
  /** The target path, for error messages. */
  readonly output: string;
  readonly tensor: string;
  /** Absolute position of the payload in the file. */
  readonly position: number;
  readonly length: number;
  /** Zero bytes written after the payload, up to the next one (alignment). */
  readonly padding: number;
  /**
   * A second descriptor of the temp file opened with O_DIRECT (direct-io.ts), or -1: the slot's
   * whole 4096-byte blocks then bypass the page cache; the bytes before its first block boundary
   * and after its last go through `fd` (a neighbouring slot shares those blocks).
   */
  readonly directFd?: number;
}

const ZEROS = new Uint8Array(4096);

/** Bytes read back at a time: a piece stays in this core's cache while it is compared. */
const READ_BACK_BYTES = 1024 * 1024;
/** This thread's read-back buffer (a SlotWriter is used synchronously, by one thread). */
let readBackBuffer: Uint8Array | undefined;

/**
 * Writes one payload into its slot in order, in any chunking, and hashes what it wrote. Each write
 * through the cache, and the zero padding there, is read back from the file at once and compared
 * byte for byte with what was written (`damaged` tells whether any differed): equal bytes hash
 * alike, so this is the check of "the file holds what the header's sha256 says" without hashing the
 * payload a second time. Direct writes are not read back (`verified` is then false): validation
 * checks those payloads in the finished file (convert/checksum.ts).
 */
export class SlotWriter {
  private readonly hash = createHash("sha256");
  private written = 0;
  private finished = false;
  private differs = false;
  private paddingDiffers = false;
  /** Direct mode: slot offsets [directStart, directEnd) go through `stage` as whole blocks. */
  private readonly directStart: number;
  private readonly directEnd: number;
  private stage: DirectStage | undefined;
  /** writeAsync's second stage, and the I/O of the stage last sent. */
  private spare: DirectStage | undefined;
  private inflight: Promise<void> | undefined;
  /** Slot offset of the stage's first byte, and how many bytes it holds. */
  private stageOffset = 0;
  private staged = 0;
  private directWritten = 0;

  /**
   * `observe` sees every payload byte as it is accepted, in order (convert/checksum.ts takes the
   * XXH64 of a payload that goes direct, for validation to check the disk against).
   */
  constructor(
    readonly slot: PayloadSlot,
    private readonly observe?: (bytes: Uint8Array) => void,
  ) {
    const range = directRange(slot);
    this.directStart = range.start;
    this.directEnd = range.end;
  }

  write(bytes: Uint8Array): void {
    this.accept(bytes);
    for (const _ of this.stageBytes(bytes, this.written - bytes.byteLength)) this.flushStage();
  }

  /**
   * write(), for a caller that can wait: in direct mode a full stage goes to the disk on libuv's
   * threads while the next one fills, so hashing and copying overlap the I/O. The bytes must stay
   * unchanged until the promise settles.
   */
  async writeAsync(bytes: Uint8Array): Promise<void> {
    this.accept(bytes);
    for (const _ of this.stageBytes(bytes, this.written - bytes.byteLength)) await this.flushStageAsync();
  }

  /** Zeroes the alignment gap (explicitly, not left as a file hole) and returns the payload's sha256. */
  finish(): string {
    for (const _ of this.padding()) this.flushStage();
    this.flushStage();
    return this.complete();
  }

  /** finish(), waiting for the last stages' I/O instead of doing it in line. */
  async finishAsync(): Promise<string> {
    for (const _ of this.padding()) await this.flushStageAsync();
    await this.flushStageAsync();
    await this.inflight;
    return this.complete();
  }

  /** Checks a write against the plan and hashes it (the payload's hash is of exactly these bytes). */
  private accept(bytes: Uint8Array): void {
    const { slot } = this;
    if (this.finished) throw new B158Error("E_INTERNAL", `payload of "${slot.tensor}" written after it was finished`);
    if (this.written + bytes.byteLength > slot.length) {
      throw new B158Error("E_INTERNAL", `payload of "${slot.tensor}" overflows its ${slot.length} planned bytes`, { details: { tensor: slot.tensor } });
    }
    this.hash.update(bytes);
    this.observe?.(bytes);
    this.written += bytes.byteLength;
  }

  /** The zero padding after a complete payload, through stageBytes (yields when a stage is full). */
  private *padding(): Generator<void> {
    const { slot } = this;
    if (this.finished) throw new B158Error("E_INTERNAL", `payload of "${slot.tensor}" finished twice`);
    if (this.written !== slot.length) {
      throw new B158Error("E_INTERNAL", `payload of "${slot.tensor}" is ${this.written} bytes, planned ${slot.length}`, { details: { tensor: slot.tensor } });
    }
    for (let done = 0; done < slot.padding; done += ZEROS.byteLength) {
      yield* this.stageBytes(ZEROS.subarray(0, Math.min(ZEROS.byteLength, slot.padding - done)), slot.length + done);
    }
  }

  private complete(): string {
    this.releaseStages();
    this.finished = true;
    return this.hash.digest("hex");
  }

  private releaseStages(): void {
    for (const stage of [this.stage, this.spare]) if (stage !== undefined) releaseStage(stage);
    this.stage = undefined;
    this.spare = undefined;
  }

  /** Some write of the payload read back from the file differently from what was written. */
  get damaged(): boolean {
    return this.differs;
  }

  /** Every byte of the slot, padding included, was read back (none went direct): `damaged` and `badPadding` then cover all of it. */
  get verified(): boolean {
    return this.directWritten === 0;
  }

  /** The zero padding after the payload read back as something else (E_B158_PADDING, not the payload's hash). */
  get badPadding(): boolean {
    return this.paddingDiffers;
  }

  /**
   * Bytes at slot offset `offset` (payload then padding): the pieces outside the direct range are
   * written and read back through the cache here; the rest is copied into the stage, and this
   * yields each time the stage is ready to go out (full, or at the direct range's end).
   */
  private *stageBytes(bytes: Uint8Array, offset: number): Generator<void> {
    let at = 0;
    while (at < bytes.byteLength) {
      const here = offset + at;
      if (here < this.directStart || here >= this.directEnd) {
        const until = here < this.directStart ? this.directStart : this.slot.length + this.slot.padding;
        const piece = bytes.subarray(at, at + Math.min(bytes.byteLength - at, until - here));
        writeFully(this.slot, piece, this.slot.position + here);
        if (!readsBack(this.slot, here, piece)) this.mismatch(here, piece.byteLength);
        at += piece.byteLength;
        continue;
      }
      this.stage ??= takeStage();
      if (this.staged === 0) this.stageOffset = here;
      const room = Math.min(this.stage.bytes.byteLength - this.staged, this.directEnd - here);
      const piece = bytes.subarray(at, at + Math.min(room, bytes.byteLength - at));
      this.stage.bytes.set(piece, this.staged);
      this.staged += piece.byteLength;
      at += piece.byteLength;
      if (this.staged === this.stage.bytes.byteLength || here + piece.byteLength === this.directEnd) yield;
    }
  }

  /**
   * Sends the full stage to the disk on libuv's threads and goes on filling the spare one; waits
   * first for the spare's own I/O (two stages: one filling, one in flight).
   */
  private async flushStageAsync(): Promise<void> {
    const { stage, staged } = this;
    if (stage === undefined || staged === 0) return;
    const offset = this.stageOffset;
    this.staged = 0;
    await this.inflight;
    const io = directRefused ? Promise.resolve(this.writeStageCached(stage, offset, staged)) : this.writeStageDirect(stage, offset, staged);
    io.catch(() => undefined); // awaited by the next flush or finishAsync, which report it
    this.inflight = io;
    this.stage = this.spare ?? takeStage();
    this.spare = stage;
  }

  private async writeStageDirect(stage: DirectStage, offset: number, staged: number): Promise<void> {
    const { slot } = this;
    const bytes = stage.bytes.subarray(0, staged);
    try {
      for (let done = 0; done < staged; ) done += (await fsWrite(slot.directFd!, bytes, done, staged - done, slot.position + offset + done)).bytesWritten;
      this.directWritten += staged;
    } catch (cause) {
      this.refuseDirect(cause);
      this.writeStageCached(stage, offset, staged);
    }
  }

  /** A stage through the page cache (O_DIRECT refused): written and read back in line. */
  private writeStageCached(stage: DirectStage, offset: number, staged: number): void {
    const bytes = stage.bytes.subarray(0, staged);
    writeFully(this.slot, bytes, this.slot.position + offset);
    const back = readSlot(this.slot, offset, staged, threadReadBackBuffer());
    this.verify(bytes, back, offset);
  }

  /** Writes the staged whole blocks directly and compares them with what the file then holds. */
  private flushStage(): void {
    const { stage, staged, slot } = this;
    if (stage === undefined || staged === 0) return;
    // the stage starts on a block boundary and is flushed when full or at directEnd (a boundary)
    const offset = this.stageOffset;
    const bytes = stage.bytes.subarray(0, staged);
    this.staged = 0;
    if (!directRefused) {
      try {
        writeDirect(slot.directFd!, bytes, slot.position + offset);
        this.directWritten += staged;
        return;
      } catch (cause) {
        this.refuseDirect(cause);
      }
    }
    this.writeStageCached(stage, offset, staged);
  }

  /** Bytes this writer put in the file through direct I/O. */
  get directBytes(): number {
    return this.directWritten;
  }

  /** Compares a stage with what the file gave back and, where they differ, which part did: the payload's bytes, or its zero padding. */
  private verify(wrote: Uint8Array, back: Uint8Array, offset: number): void {
    if (Buffer.compare(Buffer.from(back.buffer, back.byteOffset, back.byteLength), Buffer.from(wrote.buffer, wrote.byteOffset, wrote.byteLength)) === 0) return;
    for (let i = 0; i < wrote.byteLength; i++) if (wrote[i] !== back[i]) this.mismatch(offset + i, 1);
  }

  /**
   * A failed direct write or read: a filesystem that opens O_DIRECT but refuses these writes
   * (EINVAL) sends this thread through the cache from then on; anything else is an I/O error.
   */
  private refuseDirect(cause: unknown): void {
    if (!isInvalid(cause)) throw cause instanceof B158Error ? cause : ioError(this.slot.output, "write", cause);
    directRefused = true;
  }

  private mismatch(offset: number, length: number): void {
    if (offset < this.slot.length) this.differs = true;
    if (offset + length > this.slot.length) this.paddingDiffers = true;
  }
}

/**
 * The slot offsets [start, end) a SlotWriter sends past the page cache: the slot's whole blocks, when
 * it has a direct descriptor and this thread's filesystem has not refused direct writes; else empty.
 */
export function directRange(slot: PayloadSlot): { readonly start: number; readonly end: number } {
  const end = slot.length + slot.padding;
  const first = alignUp(slot.position, DIRECT_BLOCK) - slot.position;
  const last = Math.floor((slot.position + end) / DIRECT_BLOCK) * DIRECT_BLOCK - slot.position;
  const direct = slot.directFd !== undefined && slot.directFd >= 0 && !directRefused && last > first;
  return direct ? { start: first, end: last } : { start: end, end };
}

/** Set once a filesystem refused a direct write: this thread writes through the cache from then on. */
let directRefused = false;

const fsWrite = promisify(write);
const isInvalid = (cause: unknown): boolean => (cause as NodeJS.ErrnoException | undefined)?.code === "EINVAL";

/**
 * A block-aligned staging buffer; each thread keeps the ones it made. Direct stages are not read
 * back; a stage sent through the cache instead is read back into the thread's read-back buffer,
 * which holds a whole stage.
 */
interface DirectStage {
  readonly bytes: Uint8Array;
}
const STAGE_BYTES = READ_BACK_BYTES;
const freeStages: DirectStage[] = [];

function takeStage(): DirectStage {
  const stage = freeStages.pop();
  if (stage !== undefined) return stage;
  return { bytes: alignedBuffer(STAGE_BYTES) };
}

function releaseStage(stage: DirectStage): void {
  if (freeStages.length < 4) freeStages.push(stage);
}

function threadReadBackBuffer(): Uint8Array {
  return (readBackBuffer ??= new Uint8Array(READ_BACK_BYTES));
}

/** Whether the slot holds `expected` at `offset` (payload then padding), read back from the file. */
function readsBack(slot: PayloadSlot, offset: number, expected: Uint8Array): boolean {
  const buffer = threadReadBackBuffer();
  for (let at = 0; at < expected.byteLength; at += READ_BACK_BYTES) {
    const length = Math.min(READ_BACK_BYTES, expected.byteLength - at);
    const back = readSlot(slot, offset + at, length, buffer);
    if (Buffer.compare(Buffer.from(back.buffer, back.byteOffset, length), Buffer.from(expected.buffer, expected.byteOffset + at, length)) !== 0) return false;
  }
  return true;
}

function writeFully(slot: PayloadSlot, bytes: Uint8Array, position: number): void {
  try {
    for (let done = 0; done < bytes.byteLength; ) done += writeSync(slot.fd, bytes, done, bytes.byteLength - done, position + done);
  } catch (cause) {
    throw ioError(slot.output, "write", cause);
  }
}

/** `length` bytes at `offset` within the slot (payload then padding), read back from the file into `into`. */
export function readSlot(slot: PayloadSlot, offset: number, length: number, into: Uint8Array): Uint8Array {
  if (offset < 0 || length < 0 || length > into.byteLength || offset + length > slot.length + slot.padding) {
    throw new B158Error("E_INTERNAL", `read of ${length} bytes at ${offset} is outside the slot of "${slot.tensor}"`);
  }
  const out = into.subarray(0, length);
  try {
    for (let done = 0; done < length; ) {
      const read = readSync(slot.fd, out, done, length - done, slot.position + offset + done);
      if (read === 0) throw new B158Error("E_IO", `${slot.output}: the file being written is shorter than "${slot.tensor}" (read back at ${slot.position + offset + done})`);
      done += read;
    }
  } catch (cause) {
    throw ioError(slot.output, "read back", cause);
  }
  return out;
}
