import { createHash, type Hash } from "node:crypto";
import { B158Error } from "../../errors.js";
import { AtomicFile } from "../../io/atomic-file.js";
import {
  alignTo,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_MAX_DIMS,
  GGUF_MAX_NAME_BYTES,
  GGUF_VALUE_TYPES,
  GGUF_VERSION,
  storedBytes,
  type GgmlType,
  type GgufKv,
  type GgufScalar,
  type GgufScalarTypeName,
} from "./spec.js";

/**
 * A streaming, atomic GGUF v3 writer. Every tensor's size is known up front, so the header (with
 * all offsets) is encoded first and tensors follow in order, each padded to the alignment, as
 * gguf.cpp requires (offset[i] = sum of padded sizes before it). Output goes to a temp file that
 * is renamed into place by commit(); abort() leaves nothing behind.
 */
export interface GgufTensorSpec {
  readonly name: string;
  /** ggml order: ne[0] is the fastest-varying dimension (a torch [out, in] weight is [in, out]). */
  readonly ne: readonly number[];
  readonly type: GgmlType;
}

export interface GgufLayout {
  readonly header: Uint8Array;
  /** Absolute file position of the data section. */
  readonly dataOffset: number;
  /** Offsets relative to the data section, and stored byte lengths. */
  readonly offsets: readonly number[];
  readonly lengths: readonly number[];
  readonly fileSize: number;
}

const encoder = new TextEncoder();

/** Encodes magic, counts, metadata and tensor infos, and lays out the data section. */
export function layoutGguf(metadata: readonly GgufKv[], tensors: readonly GgufTensorSpec[], alignment = GGUF_DEFAULT_ALIGNMENT): GgufLayout {
  const out = new ByteBuilder();
  out.bytes(GGUF_MAGIC);
  out.u32(GGUF_VERSION);
  out.u64(tensors.length);
  out.u64(metadata.length);
  const keys = new Set<string>();
  for (const { key, value } of metadata) {
    if (key.length === 0 || keys.has(key)) throw new B158Error("E_INTERNAL", `GGUF metadata key "${key}" is empty or repeated`);
    keys.add(key);
    out.string(key);
    out.u32(GGUF_VALUE_TYPES[value.type]);
    if (value.type === "array") {
      out.u32(GGUF_VALUE_TYPES[value.itemType]);
      out.u64(value.value.length);
      for (const item of value.value) out.scalar(value.itemType, item, key);
    } else {
      out.scalar(value.type, value.value, key);
    }
  }
  const offsets: number[] = [];
  const lengths: number[] = [];
  const names = new Set<string>();
  let end = 0;
  for (const tensor of tensors) {
    if (encoder.encode(tensor.name).byteLength > GGUF_MAX_NAME_BYTES || names.has(tensor.name)) {
      throw new B158Error("E_INTERNAL", `GGUF tensor name "${tensor.name}" is over ${GGUF_MAX_NAME_BYTES} bytes or repeated`);
    }
    // a 0-dim tensor (TL scales) is one element, as gguf.cpp reads it
    if (tensor.ne.length > GGUF_MAX_DIMS || (tensor.ne[0] ?? 1) % tensor.type.blockSize !== 0) {
      throw new B158Error("E_INTERNAL", `GGUF tensor "${tensor.name}" has ${tensor.ne.length} dims or a row not a multiple of ${tensor.type.name}'s block`);
    }
    names.add(tensor.name);
    const offset = alignTo(end, alignment);
    const length = storedBytes(tensor.type, tensor.ne);
    out.string(tensor.name);
    out.u32(tensor.ne.length);
    for (const n of tensor.ne) out.u64(n);
    out.u32(tensor.type.id);
    out.u64(offset);
    offsets.push(offset);
    lengths.push(length);
    end = offset + length;
  }
  const header = out.finish();
  const dataOffset = tensors.length > 0 ? alignTo(header.byteLength, alignment) : header.byteLength;
  return { header, dataOffset, offsets, lengths, fileSize: dataOffset + alignTo(end, alignment) };
}

export interface GgufWriterOptions {
  readonly force?: boolean;
  readonly alignment?: number;
}

/**
 * Every byte is written once, in file order (header, padding, each tensor and its padding), so the
 * whole-file sha256 is computed on the way instead of by reading the file back.
 */
export class GgufWriter {
  private next = 0;
  private readonly hash: Hash = createHash("sha256");

  private constructor(
    private readonly file: AtomicFile,
    private readonly tensors: readonly GgufTensorSpec[],
    readonly layout: GgufLayout,
  ) {}

  static async create(path: string, metadata: readonly GgufKv[], tensors: readonly GgufTensorSpec[], options: GgufWriterOptions = {}): Promise<GgufWriter> {
    const layout = layoutGguf(metadata, tensors, options.alignment);
    const writer = new GgufWriter(await AtomicFile.create(path, options.force ?? false), tensors, layout);
    try {
      await writer.append(layout.header, 0);
      await writer.append(new Uint8Array(layout.dataOffset - layout.header.byteLength), layout.header.byteLength);
    } catch (error) {
      await writer.abort();
      throw error;
    }
    return writer;
  }

  get path(): string {
    return this.file.path;
  }

  /** Writes the next tensor's bytes (in the order given to create), from one buffer or chunks. */
  async writeTensor(chunks: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<void> {
    const index = this.next;
    const tensor = this.tensors[index];
    if (tensor === undefined) throw new B158Error("E_INTERNAL", "more GGUF tensors written than planned");
    let position = this.layout.dataOffset + this.layout.offsets[index]!;
    const expected = this.layout.lengths[index]!;
    let written = 0;
    for await (const chunk of chunks instanceof Uint8Array ? [chunks] : chunks) {
      if (written + chunk.byteLength > expected) break;
      await this.append(chunk, position);
      position += chunk.byteLength;
      written += chunk.byteLength;
    }
    if (written !== expected) throw new B158Error("E_INTERNAL", `GGUF tensor "${tensor.name}" got ${written} bytes, planned ${expected}`, { details: { tensor: tensor.name } });
    const end = index + 1 < this.tensors.length ? this.layout.dataOffset + this.layout.offsets[index + 1]! : this.layout.fileSize;
    if (end > position) await this.append(new Uint8Array(end - position), position);
    this.next++;
  }

  /** Sets the size and starts the flush; the complete file can be checked at tempPath before publish(). */
  async finish(): Promise<{ tempPath: string; size: number; sha256: string }> {
    if (this.next !== this.tensors.length) throw new B158Error("E_INTERNAL", `GGUF tensor ${this.next} (${this.tensors[this.next]?.name}) was never written`);
    await this.file.finish(this.layout.fileSize);
    return { tempPath: this.file.tempPath, size: this.layout.fileSize, sha256: this.hash.digest("hex") };
  }

  /** Renames the finished file onto the target, once flushed. */
  publish(): Promise<void> {
    return this.file.publish();
  }

  /** finish() then publish(). */
  async commit(): Promise<{ path: string; size: number; sha256: string }> {
    const done = await this.finish();
    await this.publish();
    return { path: this.file.path, size: done.size, sha256: done.sha256 };
  }

  private async append(bytes: Uint8Array, position: number): Promise<void> {
    await this.file.write(bytes, position);
    this.hash.update(bytes);
  }

  /** Removes the temp file; safe to call more than once. */
  abort(): Promise<void> {
    return this.file.abort();
  }
}

/** A growable little-endian byte buffer for the header. */
class ByteBuilder {
  private buffer = new Uint8Array(1 << 16);
  private view = new DataView(this.buffer.buffer);
  private length = 0;

  private reserve(n: number): number {
    if (this.length + n > this.buffer.byteLength) {
      const grown = new Uint8Array(Math.max(this.buffer.byteLength * 2, this.length + n));
      grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
      this.view = new DataView(grown.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  /** Reserves n bytes, then writes through the view as it is after any growth (never a stale one). */
  private put(n: number, write: (view: DataView, at: number) => void): void {
    const at = this.reserve(n);
    write(this.view, at);
  }

  bytes(b: Uint8Array): void {
    const at = this.reserve(b.byteLength);
    this.buffer.set(b, at);
  }
  u32(n: number): void {
    this.put(4, (view, at) => view.setUint32(at, n, true));
  }
  u64(n: number | bigint): void {
    this.put(8, (view, at) => view.setBigUint64(at, BigInt(n), true));
  }
  string(s: string): void {
    const b = encoder.encode(s);
    this.u64(b.byteLength);
    this.bytes(b);
  }

  scalar(type: GgufScalarTypeName, value: GgufScalar, key: string): void {
    const bad = () => new B158Error("E_INTERNAL", `GGUF metadata "${key}": ${String(value)} is not a valid ${type}`);
    if (type === "string") {
      if (typeof value !== "string") throw bad();
      return this.string(value);
    }
    if (type === "bool") {
      if (typeof value !== "boolean") throw bad();
      this.put(1, (view, at) => view.setUint8(at, value ? 1 : 0));
      return;
    }
    if (type === "uint64" || type === "int64") {
      if (typeof value !== "number" && typeof value !== "bigint") throw bad();
      const big = BigInt(value);
      if (type === "uint64") this.put(8, (view, at) => view.setBigUint64(at, big, true));
      else this.put(8, (view, at) => view.setBigInt64(at, big, true));
      return;
    }
    if (typeof value !== "number" || Number.isNaN(value)) throw bad();
    if (type !== "float32" && type !== "float64" && !Number.isInteger(value)) throw bad();
    switch (type) {
      case "uint8":
        return this.put(1, (view, at) => view.setUint8(at, value));
      case "int8":
        return this.put(1, (view, at) => view.setInt8(at, value));
      case "uint16":
        return this.put(2, (view, at) => view.setUint16(at, value, true));
      case "int16":
        return this.put(2, (view, at) => view.setInt16(at, value, true));
      case "uint32":
        return this.put(4, (view, at) => view.setUint32(at, value, true));
      case "int32":
        return this.put(4, (view, at) => view.setInt32(at, value, true));
      case "float32":
        return this.put(4, (view, at) => view.setFloat32(at, value, true));
      case "float64":
        return this.put(8, (view, at) => view.setFloat64(at, value, true));
    }
  }

  finish(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }
}
