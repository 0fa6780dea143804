import { createHash } from "node:crypto";
import { readSync, writeSync } from "node:fs";
import { B158Error, ioError } from "../../errors.js";

/**
 * Where one payload goes in a .b158 being written, in a form a worker thread can use: the temp
 * file's descriptor (shared by every thread of the process, open for reading and writing) and fixed
 * positions. The thread that made a payload writes and hashes it while its bytes are still in that
 * core's cache, and reads each write back from the file at once to compare it with what it wrote
 * (validate-b158.ts trusts the payload once that matched), so the writer's thread only collects
 * hashes (B158Writer.slot / record). Slots never overlap and a SlotWriter cannot write outside its
 * own, so what was read back right after writing is what the finished file holds.
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
}

const ZEROS = new Uint8Array(4096);

/** Bytes read back at a time: a piece stays in this core's cache while it is compared. */
const READ_BACK_BYTES = 1024 * 1024;
/** This thread's read-back buffer (a SlotWriter is used synchronously, by one thread). */
let readBackBuffer: Uint8Array | undefined;

/**
 * Writes one payload into its slot in order, in any chunking, and hashes what it wrote. Each write
 * and the zero padding are read back from the file at once and compared byte for byte with what was
 * written (`damaged` tells whether any differed): equal bytes hash alike, so this is the check of
 * "the file holds what the header's sha256 says" without hashing the payload a second time.
 */
export class SlotWriter {
  private readonly hash = createHash("sha256");
  private written = 0;
  private finished = false;
  private differs = false;
  private paddingDiffers = false;

  constructor(readonly slot: PayloadSlot) {}

  write(bytes: Uint8Array): void {
    const { slot } = this;
    if (this.finished) throw new B158Error("E_INTERNAL", `payload of "${slot.tensor}" written after it was finished`);
    if (this.written + bytes.byteLength > slot.length) {
      throw new B158Error("E_INTERNAL", `payload of "${slot.tensor}" overflows its ${slot.length} planned bytes`, { details: { tensor: slot.tensor } });
    }
    writeFully(slot, bytes, slot.position + this.written);
    this.hash.update(bytes);
    if (!readsBack(slot, this.written, bytes)) this.differs = true;
    this.written += bytes.byteLength;
  }

  /** Zeroes the alignment gap (explicitly, not left as a file hole), reads it back, and returns the payload's sha256. */
  finish(): string {
    const { slot } = this;
    if (this.finished) throw new B158Error("E_INTERNAL", `payload of "${slot.tensor}" finished twice`);
    if (this.written !== slot.length) {
      throw new B158Error("E_INTERNAL", `payload of "${slot.tensor}" is ${this.written} bytes, planned ${slot.length}`, { details: { tensor: slot.tensor } });
    }
    for (let done = 0; done < slot.padding; done += ZEROS.byteLength) {
      const zeros = ZEROS.subarray(0, Math.min(ZEROS.byteLength, slot.padding - done));
      writeFully(slot, zeros, slot.position + slot.length + done);
      if (!readsBack(slot, slot.length + done, zeros)) this.paddingDiffers = true;
    }
    this.finished = true;
    return this.hash.digest("hex");
  }

  /** Some write of the payload read back from the file differently from what was written. */
  get damaged(): boolean {
    return this.differs;
  }

  /** The zero padding after the payload read back as something else (E_B158_PADDING, not the payload's hash). */
  get badPadding(): boolean {
    return this.paddingDiffers;
  }
}

/** Whether the slot holds `expected` at `offset` (payload then padding), read back from the file. */
function readsBack(slot: PayloadSlot, offset: number, expected: Uint8Array): boolean {
  readBackBuffer ??= new Uint8Array(READ_BACK_BYTES);
  const buffer = readBackBuffer;
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
