import { B158Error, type ErrorCode } from "../../errors.js";
import { openFileWith, readInto, type ByteSource } from "../../io/byte-source.js";
import {
  alignTo,
  BITNET_SCALE_SLOT_BYTES,
  bitnetScaleSlot,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_MAX_DIMS,
  GGUF_MAX_NAME_BYTES,
  GGUF_SCALAR_BYTES,
  GGUF_TABLES,
  GGUF_TYPE_NAMES,
  type GgmlType,
  type GgufKv,
  type GgufRuntime,
  type GgufScalar,
  type GgufScalarTypeName,
  type GgufValue,
} from "./spec.js";
import { readTensorTypes, type RawTensorInfo, type TypeReading } from "./type-reading.js";

/**
 * A strict GGUF reader: the checks gguf.cpp makes when llama.cpp loads a file (magic, version 2 or
 * 3, unique non-empty keys, no nested arrays, a power-of-two uint32 alignment, unique names under
 * 64 bytes, at most 4 dims, known types, rows that fill whole blocks, offsets exactly contiguous
 * and aligned, data inside the file), and none of the allocations a hostile header asks for:
 * every count is checked against the bytes left before anything is allocated. Type ids are read
 * with the table of the runtime the file was written for (type-reading.ts decides which).
 */
export interface GgufTensorInfo {
  readonly name: string;
  /** ggml order: ne[0] varies fastest. */
  readonly ne: readonly number[];
  readonly type: GgmlType;
  /** Relative to the data section. */
  readonly offset: number;
  /** Stored bytes (before alignment padding); for I2_S/TL1/TL2 including the 32-byte scale slot. */
  readonly length: number;
  readonly fileOffset: number;
}

/** The f32 tensor scale of an I2_S/TL1/TL2 tensor, and what surrounds it. */
export interface BitnetScale {
  readonly scale: number;
  /** Nonzero bytes where bitnet.cpp's writers put zeros: TL2's padding to 32 after its codes, and the 28 bytes after a TL scale (I2_S's are left uninitialised by llama-quantize, so not counted). */
  readonly nonZeroPadding: number;
}

export interface GgufFile {
  readonly name: string;
  readonly size: number;
  readonly version: number;
  readonly alignment: number;
  readonly dataOffset: number;
  /** The family of runtimes whose type table the file's ids were read with (types.table names it). */
  readonly runtime: GgufRuntime;
  /** Which table the type ids were read with, and the evidence that decided it. */
  readonly types: TypeReading;
  readonly kvs: readonly GgufKv[];
  readonly metadata: ReadonlyMap<string, GgufValue>;
  readonly tensors: readonly GgufTensorInfo[];
  /** A scalar metadata value, or undefined when absent or an array. */
  scalar(key: string): GgufScalar | undefined;
  tensor(name: string): GgufTensorInfo;
  readTensor(name: string): Promise<Uint8Array>;
  /** Bytes [offset, offset + into.length) of a tensor's data into `into` (a caller's own buffer or memory). */
  readTensorInto(name: string, offset: number, into: Uint8Array): Promise<void>;
  /** The scale bitnet.cpp's kernels read after an I2_S/TL1/TL2 tensor's codes (32 bytes read, whatever the tensor's size). */
  readBitnetScale(name: string): Promise<BitnetScale>;
  /** The tensor's bytes in chunks of whole blocks (elements for plain types), at most about `chunkBytes` each. */
  readTensorChunks(name: string, chunkBytes?: number): AsyncGenerator<Uint8Array>;
  close(): Promise<void>;
}

const WINDOW = 1 << 20;
/** Smallest encodings, to bound counts by the bytes left: a KV is key length + 1 byte + type; a tensor info is name length + n_dims + type + offset. */
const MIN_KV_BYTES = 8 + 1 + 4 + 1;
const MIN_TENSOR_INFO_BYTES = 8 + 1 + 4 + 4 + 8;
const decoder = new TextDecoder("utf-8", { fatal: true });

function fail(code: ErrorCode, file: string, message: string, details: Record<string, unknown> = {}, hint?: string): never {
  throw new B158Error(code, `${file}: ${message}`, { details: { file, ...details }, hint: hint ?? "The file is damaged or not a valid GGUF; write it again." });
}

/** Sequential little-endian reads over a ByteSource through a sliding window. */
class Cursor {
  position = 0;
  private window: Uint8Array = new Uint8Array(0);
  private windowStart = 0;
  private view: DataView = new DataView(new ArrayBuffer(0));

  constructor(
    private readonly source: ByteSource,
    private readonly what: () => string,
  ) {}

  get remaining(): number {
    return this.source.size - this.position;
  }

  private async ensure(n: number): Promise<number> {
    if (n > this.remaining) fail("E_GGUF_TRUNCATED", this.source.name, `ends inside ${this.what()} (needs ${n} bytes at offset ${this.position}, ${this.remaining} left)`);
    const at = this.position - this.windowStart;
    if (at < 0 || at + n > this.window.byteLength) {
      const length = Math.min(Math.max(n, WINDOW), this.source.size - this.position);
      this.window = await this.source.read(this.position, length);
      this.windowStart = this.position;
      this.view = new DataView(this.window.buffer, this.window.byteOffset, this.window.byteLength);
    }
    const offset = this.position - this.windowStart;
    this.position += n;
    return offset;
  }

  async bytes(n: number): Promise<Uint8Array> {
    const at = await this.ensure(n);
    return this.window.subarray(at, at + n);
  }
  // ensure() may replace the window: always await it before touching this.view
  async u32(): Promise<number> {
    const at = await this.ensure(4);
    return this.view.getUint32(at, true);
  }
  /** An int64 count or size, checked to be in [0, limit]. */
  async count(limit: number, field: string, code: ErrorCode = "E_GGUF_HEADER"): Promise<number> {
    const at = await this.ensure(8);
    const value = this.view.getBigInt64(at, true);
    if (value < 0n || value > BigInt(limit)) fail(code, this.source.name, `${field} ${value} is out of range (0 .. ${limit}) at offset ${this.position - 8}`, { field, value: String(value) });
    return Number(value);
  }
  async string(field: string, code: ErrorCode = "E_GGUF_HEADER"): Promise<string> {
    const length = await this.count(this.remaining - 8 < 0 ? 0 : this.remaining - 8, `${field} length`, code);
    const bytes = await this.bytes(length);
    try {
      return decoder.decode(bytes);
    } catch {
      fail(code, this.source.name, `${field} at offset ${this.position - length} is not valid UTF-8`, { field });
    }
  }
  async scalar(type: Exclude<GgufScalarTypeName, "string">): Promise<GgufScalar> {
    const at = await this.ensure(GGUF_SCALAR_BYTES[type]);
    const v = this.view;
    switch (type) {
      case "uint8":
        return v.getUint8(at);
      case "int8":
        return v.getInt8(at);
      case "uint16":
        return v.getUint16(at, true);
      case "int16":
        return v.getInt16(at, true);
      case "uint32":
        return v.getUint32(at, true);
      case "int32":
        return v.getInt32(at, true);
      case "float32":
        return v.getFloat32(at, true);
      case "float64":
        return v.getFloat64(at, true);
      case "uint64":
        return v.getBigUint64(at, true);
      case "int64":
        return v.getBigInt64(at, true);
      case "bool": {
        const b = v.getUint8(at);
        if (b > 1) fail("E_GGUF_HEADER", this.source.name, `bool in ${this.what()} at offset ${this.position - 1} is ${b}, not 0 or 1`);
        return b === 1;
      }
    }
  }
}

export function openGgufFile(path: string): Promise<GgufFile> {
  return openFileWith(path, openGguf);
}

export async function openGguf(source: ByteSource): Promise<GgufFile> {
  const file = source.name;
  let where = "the preamble";
  const cursor = new Cursor(source, () => where);
  if (source.size < 4 || !sameBytes(await source.read(0, 4), GGUF_MAGIC)) fail("E_GGUF_MAGIC", file, 'does not start with the GGUF magic "GGUF"', {}, "Is this a GGUF file?");
  cursor.position = 4;
  const version = await cursor.u32();
  if (version === 1 || version === 0 || version > 3) {
    const swapped = version > 0xffff && (version & 0xffff) === 0;
    fail("E_GGUF_VERSION", file, swapped ? "looks big-endian (version bytes reversed); only little-endian GGUF is supported" : `is GGUF version ${version}; versions 2 and 3 are supported`, { version });
  }
  const tensorCount = await cursor.count(Math.floor(cursor.remaining / MIN_TENSOR_INFO_BYTES), "tensor count");
  const kvCount = await cursor.count(Math.floor(cursor.remaining / MIN_KV_BYTES), "metadata count");

  const kvs: GgufKv[] = [];
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    where = `metadata entry ${i}`;
    const key = await cursor.string(`metadata key ${i}`);
    if (key.length === 0) fail("E_GGUF_HEADER", file, `metadata entry ${i} has an empty key`);
    if (metadata.has(key)) fail("E_GGUF_HEADER", file, `metadata key "${key}" appears twice`, { key });
    where = `metadata "${key}"`;
    const value = await readValue(cursor, file, key);
    kvs.push({ key, value });
    metadata.set(key, value);
  }

  const alignmentValue = metadata.get("general.alignment");
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  if (alignmentValue !== undefined) {
    if (alignmentValue.type !== "uint32") fail("E_GGUF_HEADER", file, `general.alignment is ${alignmentValue.type}, must be uint32`);
    alignment = alignmentValue.value as number;
    if (alignment === 0 || (alignment & (alignment - 1)) !== 0) fail("E_GGUF_HEADER", file, `general.alignment ${alignment} is not a power of 2`, { alignment });
  }
  const names = new Set<string>();
  const raws: RawTensorInfo[] = [];
  for (let i = 0; i < tensorCount; i++) {
    where = `tensor info ${i}`;
    const name = await cursor.string(`tensor ${i} name`, "E_GGUF_TENSOR");
    const nameBytes = Buffer.byteLength(name);
    if (nameBytes === 0 || nameBytes > GGUF_MAX_NAME_BYTES) fail("E_GGUF_TENSOR", file, `tensor ${i} name "${name}" is ${nameBytes} bytes (1 .. ${GGUF_MAX_NAME_BYTES} allowed)`, { tensor: name });
    if (names.has(name)) fail("E_GGUF_TENSOR", file, `tensor "${name}" appears twice`, { tensor: name });
    names.add(name);
    const dims = await cursor.u32();
    if (dims > GGUF_MAX_DIMS) fail("E_GGUF_TENSOR", file, `tensor "${name}" has ${dims} dimensions (at most ${GGUF_MAX_DIMS})`, { tensor: name, dims });
    const ne: number[] = [];
    let elements = 1;
    for (let d = 0; d < dims; d++) {
      const n = await cursor.count(Number.MAX_SAFE_INTEGER, `tensor "${name}" ne[${d}]`, "E_GGUF_TENSOR");
      ne.push(n);
      elements *= n;
      if (elements > Number.MAX_SAFE_INTEGER) fail("E_GGUF_TENSOR", file, `tensor "${name}" has more elements than can be addressed`, { tensor: name, ne });
    }
    const typeId = await cursor.u32();
    const offset = await cursor.count(Number.MAX_SAFE_INTEGER, `tensor "${name}" offset`, "E_GGUF_OFFSETS");
    raws.push({ name, ne, typeId, offset });
  }
  where = "the padding before the data section";
  const dataOffset = tensorCount > 0 ? alignTo(cursor.position, alignment) : cursor.position;
  // the types, sizes and offsets, checked with the table of the runtime the file was written for
  const reading = readTensorTypes(file, raws, metadata, { alignment, dataOffset, size: source.size });
  const infos = reading.tensors;
  const tensors: GgufTensorInfo[] = infos.map((t) => ({ ...t, fileOffset: dataOffset + t.offset }));
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const tensor = (name: string): GgufTensorInfo => {
    const found = byName.get(name);
    if (found === undefined) throw new B158Error("E_TENSOR_MISSING", `${file}: has no tensor "${name}"`, { details: { file, tensor: name } });
    return found;
  };
  return {
    name: file,
    size: source.size,
    version,
    alignment,
    dataOffset,
    runtime: GGUF_TABLES[reading.table].runtime,
    types: reading,
    kvs,
    metadata,
    tensors,
    scalar(key) {
      const v = metadata.get(key);
      return v === undefined || v.type === "array" ? undefined : v.value;
    },
    tensor,
    readTensor(name) {
      const t = tensor(name);
      return source.read(t.fileOffset, t.length);
    },
    async readTensorInto(name, offset, into) {
      const t = tensor(name);
      if (!(Number.isSafeInteger(offset) && offset >= 0 && offset + into.byteLength <= t.length)) {
        throw new B158Error("E_INTERNAL", `${file}: bytes ${offset}..${offset + into.byteLength} are outside tensor "${name}"'s ${t.length} bytes`);
      }
      await readInto(source, t.fileOffset + offset, into);
    },
    async readBitnetScale(name) {
      const t = tensor(name);
      if (t.type.bitnet === undefined) throw new B158Error("E_INTERNAL", `${file}: tensor "${name}" is ${t.type.name}, not a bitnet.cpp type`);
      const { codeBytes, scaleOffset } = bitnetScaleSlot(t.type, t.ne);
      const padding = scaleOffset - codeBytes;
      const bytes = await source.read(t.fileOffset + codeBytes, padding + BITNET_SCALE_SLOT_BYTES);
      const scale = new DataView(bytes.buffer, bytes.byteOffset + padding, 4).getFloat32(0, true);
      let nonZeroPadding = 0;
      if (t.type.bitnet !== "i2_s") for (let i = 0; i < bytes.byteLength; i++) if ((i < padding || i >= padding + 4) && bytes[i] !== 0) nonZeroPadding++;
      return { scale, nonZeroPadding };
    },
    async *readTensorChunks(name, chunkBytes = 8 * 1024 * 1024) {
      const t = tensor(name);
      const step = Math.max(1, Math.floor(chunkBytes / t.type.typeSize)) * t.type.typeSize;
      for (let done = 0; done < t.length; done += step) yield await source.read(t.fileOffset + done, Math.min(step, t.length - done));
    },
    close: () => source.close(),
  };
}

async function readValue(cursor: Cursor, file: string, key: string): Promise<GgufValue> {
  const typeId = await cursor.u32();
  const type = GGUF_TYPE_NAMES[typeId];
  if (type === undefined) fail("E_GGUF_HEADER", file, `metadata "${key}" has unknown value type ${typeId}`, { key, type: typeId });
  if (type !== "array") return { type, value: await readScalar(cursor, type, key) };
  const itemId = await cursor.u32();
  const itemType = GGUF_TYPE_NAMES[itemId];
  if (itemType === undefined || itemType === "array") fail("E_GGUF_HEADER", file, `metadata "${key}" is an array of ${itemType === "array" ? "arrays (gguf.cpp rejects nesting)" : `unknown type ${itemId}`}`, { key });
  const itemBytes = itemType === "string" ? 8 : GGUF_SCALAR_BYTES[itemType];
  const length = await cursor.count(Math.floor(cursor.remaining / itemBytes), `metadata "${key}" array length`);
  const items: GgufScalar[] = new Array(length);
  for (let i = 0; i < length; i++) items[i] = await readScalar(cursor, itemType, key);
  return { type: "array", itemType, value: items };
}

function readScalar(cursor: Cursor, type: GgufScalarTypeName, key: string): Promise<GgufScalar> {
  return type === "string" ? cursor.string(`metadata "${key}" string`) : cursor.scalar(type);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((x, i) => x === b[i]);
}
