import { createHash } from "node:crypto";
import { readSync, writeSync } from "node:fs";
import { B158Error, ioError } from "../../errors.js";

/**
 * Where one payload goes in a .b158 being written, in a form a worker thread can use: the temp
 * file's descriptor (shared by every thread of the process, open for reading and writing) and fixed
 * positions. The thread that made a payload writes and hashes it while its bytes are still in that
 * core's cache, then reads it back (validate-b158.ts), so the writer's thread only collects hashes
 * (B158Writer.slot / record). Slots never overlap and a SlotWriter cannot write outside its own.
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

/** Writes one payload into its slot in order, in any chunking, and hashes what it wrote. */
export class SlotWriter {
  private readonly hash = createHash("sha256");
  private written = 0;
  private finished = false;

  constructor(readonly slot: PayloadSlot) {}

  write(bytes: Uint8Array): void {
    const { slot } = this;
    if (this.finished) throw new B158Error("E_INTERNAL", `payload of "${slot.tensor}" written after it was finished`);
    if (this.written + bytes.byteLength > slot.length) {
      throw new B158Error("E_INTERNAL", `payload of "${slot.tensor}" overflows its ${slot.length} planned bytes`, { details: { tensor: slot.tensor } });
    }
    writeFully(slot, bytes, slot.position + this.written);
    this.hash.update(bytes);
    this.written += bytes.byteLength;
  }

  /** Zeroes the alignment gap (explicitly, not left as a file hole) and returns the payload's sha256. */
  finish(): string {
    const { slot } = this;
    if (this.finished) throw new B158Error("E_INTERNAL", `payload of "${slot.tensor}" finished twice`);
    if (this.written !== slot.length) {
      throw new B158Error("E_INTERNAL", `payload of "${slot.tensor}" is ${this.written} bytes, planned ${slot.length}`, { details: { tensor: slot.tensor } });
    }
    for (let done = 0; done < slot.padding; done += ZEROS.byteLength) {
      writeFully(slot, ZEROS.subarray(0, Math.min(ZEROS.byteLength, slot.padding - done)), slot.position + slot.length + done);
    }
    this.finished = true;
    return this.hash.digest("hex");
  }
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
