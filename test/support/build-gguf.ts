/**
 * Hermetic builder for hostile GGUF files: raw little-endian bytes written by hand, with a knob on
 * every field so one test can break one rule. Nothing here validates, and nothing imports b158's
 * own writer or its type tables, so a bug there cannot hide a bug in the reader (the sizes below
 * are an independent transcription of ggml's block geometry and bitnet.cpp's ggml_nbytes).
 */

/** GGUF value type ids (gguf.h). */
export const VT = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;
export type ValueTypeName = keyof typeof VT;

/**
 * ggml tensor types these tests use: id, elements per block, bytes per block (bitnet ones sized
 * specially). The same id means different things in different runtimes (ggml.h of mainline, of
 * bitnet.cpp's 2024 and 2026 forks, of PrismML's fork), so each meaning has its own name here.
 */
export const TT = {
  F32: { id: 0, block: 1, size: 4 },
  F16: { id: 1, block: 1, size: 2 },
  Q4_0: { id: 2, block: 32, size: 18 },
  Q8_0: { id: 8, block: 32, size: 34 },
  TQ1_0: { id: 34, block: 256, size: 54 },
  TQ2_0: { id: 35, block: 256, size: 66 },
  // mainline since 2025-2026: block_mxfp4 {e; qs[16]}, block_nvfp4 {d[4]; qs[32]}, block_q1_0 / block_q2_0 {f16 d; qs[16]}
  MXFP4: { id: 39, block: 32, size: 17 },
  NVFP4: { id: 40, block: 64, size: 36 },
  Q1_0: { id: 41, block: 128, size: 18 },
  Q2_0: { id: 42, block: 64, size: 18 },
  // bitnet.cpp's forks: 2024-2025 (I2_S 36, TL1 38, TL2 39) and 2026 (TL2 moved to 42)
  I2_S: { id: 36, block: 1, size: 1 },
  TL1: { id: 38, block: 1, size: 1 },
  TL2: { id: 39, block: 1, size: 1 },
  TL2_2026: { id: 42, block: 1, size: 1 },
  // PrismML's fork: Q2_0 in 128-weight groups at 42, and its own 142/143
  PRISM_Q2_0: { id: 42, block: 128, size: 34 },
  PQ2_0: { id: 142, block: 128, size: 34 },
  PTQ1_0: { id: 143, block: 128, size: 28 },
} as const;
export type TypeName = keyof typeof TT;

/** TL2's code bytes, C int arithmetic left to right (bitnet.cpp's ggml_nbytes before its roundup). */
export function tl2CodeBytes(k: number, m: number): number {
  return Math.trunc((Math.trunc(((k - 256) * m) / 3) * 5) / 8) + Math.trunc((Math.trunc((256 * m) / 2) * 4) / 8);
}

/**
 * Bytes a tensor's data takes before padding: blocks x size, or bitnet.cpp's ggml_nbytes, which
 * counts a 32-byte slot (f32 scale + 28 zero bytes) after the codes: I2_S and TL1 n/4 + 32, TL2
 * roundup(P, 32) + 32.
 */
export function tensorBytes(type: TypeName, ne: readonly number[]): number {
  const elements = ne.reduce((a, b) => a * b, 1);
  if (type === "I2_S" || type === "TL1") return elements / 4 + 32;
  if (type === "TL2" || type === "TL2_2026") return Math.ceil(tl2CodeBytes(ne[0] ?? 1, ne[1] ?? 1) / 32) * 32 + 32;
  const t = TT[type];
  return Math.floor((elements / t.block) * t.size);
}

/**
 * A TL tensor's data as bitnet.cpp's converter writes it: the codes, zeros up to a multiple of 32,
 * then the scale slot: f32 little-endian scale and 28 zero bytes (no `<name>_scale` tensor).
 */
export function forkTlData(codes: Uint8Array, scale: number): Uint8Array {
  const at = Math.ceil(codes.byteLength / 32) * 32;
  const out = new Uint8Array(at + 32);
  out.set(codes);
  new DataView(out.buffer).setFloat32(at, scale, true);
  return out;
}

/** Little-endian byte sink. */
export class Bytes {
  private parts: number[] = [];
  get length(): number {
    return this.parts.length;
  }
  raw(bytes: Uint8Array | readonly number[]): this {
    for (const b of bytes) this.parts.push(b & 0xff);
    return this;
  }
  u8(n: number): this {
    return this.raw([n]);
  }
  u32(n: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n >>> 0, true);
    return this.raw(b);
  }
  /** A 64-bit field: negative values are written two's complement (as gguf.cpp's int64 reads them). */
  u64(n: number | bigint): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(n)), true);
    return this.raw(b);
  }
  /** A GGUF string: u64 length (the true byte length unless overridden), then the bytes. */
  str(s: string | Uint8Array, length?: number | bigint): this {
    const bytes = typeof s === "string" ? new TextEncoder().encode(s) : s;
    return this.u64(length ?? bytes.byteLength).raw(bytes);
  }
  finish(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

export type Scalar = number | bigint | boolean | string | Uint8Array;

/** Encodes one scalar of a value type (type ids outside 0..12 other than array write nothing). */
function scalar(out: Bytes, type: number, value: Scalar): void {
  const num = typeof value === "boolean" ? (value ? 1 : 0) : typeof value === "number" || typeof value === "bigint" ? value : 0;
  const b = new Uint8Array(8);
  const view = new DataView(b.buffer);
  switch (type) {
    case VT.uint8:
    case VT.int8:
    case VT.bool:
      return void out.u8(Number(num));
    case VT.uint16:
    case VT.int16:
      view.setUint16(0, Number(num) & 0xffff, true);
      return void out.raw(b.subarray(0, 2));
    case VT.uint32:
    case VT.int32:
      return void out.u32(Number(num));
    case VT.float32:
      view.setFloat32(0, Number(num), true);
      return void out.raw(b.subarray(0, 4));
    case VT.float64:
      view.setFloat64(0, Number(num), true);
      return void out.raw(b);
    case VT.uint64:
    case VT.int64:
      return void out.u64(BigInt(num));
    case VT.string:
      return void out.str(typeof value === "string" || value instanceof Uint8Array ? value : String(value));
  }
}

export interface KvSpec {
  /** The key: a string, or raw bytes (invalid UTF-8). */
  readonly key: string | Uint8Array;
  /** Overrides the key's u64 length prefix. */
  readonly keyLength?: number | bigint;
  /** The value type written (a name, or any u32 id). */
  readonly type: ValueTypeName | number;
  /** A scalar's value; for arrays, the items. */
  readonly value?: Scalar | readonly Scalar[];
  /** An array's item type. */
  readonly itemType?: ValueTypeName | number;
  /** Overrides an array's u64 item count. */
  readonly arrayLength?: number | bigint;
  /** Bytes written after the type id instead of an encoded value (wins over value). */
  readonly raw?: Uint8Array | readonly number[];
}

export interface TensorSpec {
  /** The name: a string, or raw bytes. */
  readonly name: string | Uint8Array;
  readonly nameLength?: number | bigint;
  /** ggml order (ne[0] fastest); numbers or bigints (negative ones are written two's complement). Default [4]. */
  readonly ne?: readonly (number | bigint)[];
  /** Overrides n_dims (ne is still written as given). */
  readonly nDims?: number;
  /** Default "F32". */
  readonly type?: TypeName;
  /** Overrides the written type id. */
  readonly typeId?: number;
  /** Overrides the data-section offset (default: the previous tensor's end, aligned). */
  readonly offset?: number | bigint;
  /** Overrides the stored byte length used to lay out the next tensor and the data section. */
  readonly bytes?: number;
  /** The tensor's data (default: a recognisable pattern); its length is the stored length unless `bytes` says otherwise. */
  readonly data?: Uint8Array;
}

export interface GgufBuild {
  /** Default "GGUF". */
  readonly magic?: Uint8Array | readonly number[];
  /** Default 3. */
  readonly version?: number;
  /** Raw bytes for the 4-byte version field (wins over version). */
  readonly versionBytes?: readonly number[];
  readonly tensorCount?: number | bigint;
  readonly kvCount?: number | bigint;
  readonly kvs?: readonly KvSpec[];
  readonly tensors?: readonly TensorSpec[];
  /** Alignment used for layout. Default: general.alignment when given as a number, else 32. */
  readonly alignment?: number;
  /** Stops after this many bytes of the header (the data section is then left out). */
  readonly headerOnly?: boolean;
  /** Bytes of data after the padded header. Default: through the last tensor, padded to the alignment (none if that is over 1 MiB). */
  readonly dataBytes?: number;
  /** Cuts the finished file to this length. */
  readonly truncate?: number;
}

const typeId = (t: ValueTypeName | number): number => (typeof t === "number" ? t : VT[t]);
const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

function encodeKv(out: Bytes, kv: KvSpec): void {
  out.str(kv.key, kv.keyLength);
  const type = typeId(kv.type);
  out.u32(type);
  if (kv.raw !== undefined) return void out.raw(kv.raw);
  if (type === VT.array) {
    const items = (Array.isArray(kv.value) ? kv.value : []) as readonly Scalar[];
    const item = typeId(kv.itemType ?? "uint8");
    out.u32(item);
    out.u64(kv.arrayLength ?? items.length);
    for (const v of items) scalar(out, item, v);
    return;
  }
  scalar(out, type, (kv.value ?? 0) as Scalar);
}

export interface BuiltGguf {
  readonly bytes: Uint8Array;
  /** Absolute position of the data section. */
  readonly dataOffset: number;
  /** Offsets written, relative to the data section (numbers when they fit). */
  readonly offsets: readonly number[];
  readonly lengths: readonly number[];
}

/** Lays out and encodes a GGUF file; every field can be overridden to break one rule. */
export function layoutGgufBytes(options: GgufBuild = {}): BuiltGguf {
  const kvs = options.kvs ?? [];
  const tensors = options.tensors ?? [];
  const alignKv = kvs.find((kv) => kv.key === "general.alignment");
  const alignment = options.alignment ?? (typeof alignKv?.value === "number" && alignKv.value > 0 ? alignKv.value : 32);
  const out = new Bytes();
  out.raw(options.magic ?? [0x47, 0x47, 0x55, 0x46]);
  if (options.versionBytes !== undefined) out.raw(options.versionBytes);
  else out.u32(options.version ?? 3);
  out.u64(options.tensorCount ?? tensors.length);
  out.u64(options.kvCount ?? kvs.length);
  for (const kv of kvs) encodeKv(out, kv);
  const offsets: number[] = [];
  const lengths: number[] = [];
  let end = 0;
  for (const t of tensors) {
    const ne = t.ne ?? [4];
    const type = t.type ?? "F32";
    const length = t.bytes ?? t.data?.byteLength ?? tensorBytes(type, ne.map(Number));
    const offset = t.offset ?? alignUp(end, alignment);
    out.str(t.name, t.nameLength);
    out.u32(t.nDims ?? ne.length);
    for (const n of ne) out.u64(n);
    out.u32(t.typeId ?? TT[type].id);
    out.u64(offset);
    offsets.push(Number(offset));
    lengths.push(length);
    end = Number(offset) + length;
  }
  const header = out.finish();
  const dataOffset = tensors.length > 0 ? alignUp(header.byteLength, alignment) : header.byteLength;
  // a header claiming 10^15 bytes of data gets no 10^15-byte buffer: data beyond 1 MiB must be asked for with dataBytes
  const laidOut = tensors.length > 0 ? alignUp(end, alignment) : 0;
  const given = tensors.length > 0 && tensors.every((t) => t.data !== undefined);
  const dataBytes = options.headerOnly ? 0 : (options.dataBytes ?? (laidOut <= 1 << 20 || given ? laidOut : 0));
  const size = options.headerOnly ? header.byteLength : dataOffset + dataBytes;
  const bytes = new Uint8Array(size);
  bytes.set(header);
  // a recognisable pattern in the data section, so reads can be checked; given data over it, padding zero
  for (let i = dataOffset; i < size; i++) bytes[i] = (i * 7 + 3) & 0xff;
  tensors.forEach((t, i) => {
    if (t.data === undefined) return;
    const at = dataOffset + offsets[i]!;
    const end = i + 1 < tensors.length ? dataOffset + offsets[i + 1]! : size;
    if (at < end) bytes.fill(0, at, end);
    bytes.set(t.data.subarray(0, Math.max(0, Math.min(t.data.byteLength, size - at))), at);
  });
  return { bytes: options.truncate === undefined ? bytes : bytes.slice(0, options.truncate), dataOffset, offsets, lengths };
}

export function buildGguf(options: GgufBuild = {}): Uint8Array {
  return layoutGgufBytes(options).bytes;
}

/** Shorthands for metadata entries. */
export const kv = {
  str: (key: string, value: string | Uint8Array): KvSpec => ({ key, type: "string", value }),
  u32: (key: string, value: number): KvSpec => ({ key, type: "uint32", value }),
  of: (key: string, type: ValueTypeName | number, value: Scalar): KvSpec => ({ key, type, value }),
  arr: (key: string, itemType: ValueTypeName | number, value: readonly Scalar[]): KvSpec => ({ key, type: "array", itemType, value }),
};

/** The metadata of a small valid mainline file: architecture, a name, an alignment-free layout. */
export const VALID_KVS: readonly KvSpec[] = [
  kv.str("general.architecture", "llama"),
  kv.str("general.name", "tiny"),
  kv.u32("llama.block_count", 1),
  kv.of("llama.rope.freq_base", "float32", 10000),
  kv.of("general.quantized", "bool", true),
  kv.of("general.size", "uint64", 123n),
  kv.arr("tokenizer.ggml.tokens", "string", ["<s>", "</s>", "a"]),
  kv.arr("tokenizer.ggml.scores", "float32", [0, 0, -1]),
];

/** Three tensors: F32 [4, 2] (32 bytes), Q8_0 [32, 2] (68 bytes), a 0-dim F16 (2 bytes). */
export const VALID_TENSORS: readonly TensorSpec[] = [
  { name: "token_embd.weight", ne: [4, 2], type: "F32" },
  { name: "blk.0.attn_q.weight", ne: [32, 2], type: "Q8_0" },
  { name: "output_norm.scale", ne: [], type: "F16" },
];

export function validGguf(): Uint8Array {
  return buildGguf({ kvs: VALID_KVS, tensors: VALID_TENSORS });
}

/** A bitnet.cpp file: its architecture (general.file_type 40 is I2_S there, Q1_0 in mainline and the 2026 fork). */
export const BITNET_KVS: readonly KvSpec[] = [kv.str("general.architecture", "bitnet-b1.58"), kv.u32("general.file_type", 40)];
